//! Request flags shared by `eval` and `simulate`, parsed into the library's [`RequestSpec`].

use clap::Args;

use canary_compiler::request::RequestSpec;

#[derive(Args, Debug, Default)]
pub struct RequestFlags {
    /// Service the request is for (optional when the policy has one service or only top-level rules).
    #[arg(long)]
    pub service: Option<String>,
    /// A header, `'NAME: VALUE'` (repeatable; a name given twice is a header sent twice, and every value
    /// counts, as in Envoy).
    #[arg(long = "header", value_name = "'K: V'")]
    headers: Vec<String>,
    /// A cookie, `NAME=VALUE` (repeatable).
    #[arg(long = "cookie", value_name = "K=V")]
    cookies: Vec<String>,
    /// A query parameter, `NAME=VALUE` (repeatable).
    #[arg(long = "query", value_name = "K=V")]
    queries: Vec<String>,
    /// A label of the calling workload, `LABEL=VALUE` (repeatable).
    #[arg(long = "source", value_name = "K=V")]
    sources: Vec<String>,
    /// Request path (default `/`).
    #[arg(long)]
    path: Option<String>,
    /// Request method (default `GET`).
    #[arg(long)]
    method: Option<String>,
    /// `:authority` (default: the service's name, as a mesh client would send it).
    #[arg(long)]
    host: Option<String>,
}

impl RequestFlags {
    pub fn spec(&self) -> Result<RequestSpec, String> {
        let pairs = |flag: &str, list: &[String], sep: char| -> Result<Vec<(String, String)>, String> {
            list.iter()
                .map(|kv| {
                    let (k, v) = kv.split_once(sep).ok_or_else(|| match sep {
                        ':' => format!("--{flag} {kv:?}: expected 'NAME: VALUE'"),
                        _ => format!("--{flag} {kv:?}: expected NAME=VALUE"),
                    })?;
                    Ok((k.trim().to_string(), v.trim().to_string()))
                })
                .collect()
        };
        Ok(RequestSpec {
            method: self.method.clone(),
            path: self.path.clone(),
            host: self.host.clone(),
            headers: pairs("header", &self.headers, ':')?,
            cookies: pairs("cookie", &self.cookies, '=')?,
            queries: pairs("query", &self.queries, '=')?,
            sources: pairs("source", &self.sources, '=')?,
        })
    }
}
