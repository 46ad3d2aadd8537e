-- S3 by hand: user-agent containing "Chrome" -> v2, everyone else v1 (overwrites any client-sent value).
function envoy_on_request(handle)
  local headers = handle:headers()
  local ua = headers:get("user-agent")
  if ua ~= nil and string.find(ua, "Chrome", 1, true) then
    headers:replace("x-canary-subset", "v2")
  else
    headers:replace("x-canary-subset", "v1")
  end
end
