-- S4 by hand: Android users split 50% v1 / 50% v2 (a fresh random draw per request), all other OSes v1.
function envoy_on_request(handle)
  local headers = handle:headers()
  local ua = headers:get("user-agent")
  if ua ~= nil and string.find(ua, "Android", 1, true) and math.random() < 0.5 then
    headers:replace("x-canary-subset", "v2")
  else
    headers:replace("x-canary-subset", "v1")
  end
end
