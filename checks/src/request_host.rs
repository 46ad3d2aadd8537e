//! A proxy for the filter's engine, in memory: one request's header map (as Envoy holds it) and the node's
//! labels. Header reads, replacement and removal behave as Envoy's do, so what the map holds afterwards is
//! what Envoy's route table would see.

use std::cell::RefCell;

use canary_filter::{header_map, Host, LogLevel};

#[derive(Debug, Default)]
pub struct RequestHost {
    /// (lowercase name, value) in map order; repeats kept.
    pub headers: RefCell<Vec<(String, Vec<u8>)>>,
    pub labels: Vec<(String, Vec<u8>)>,
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    /// Stream properties the filter set (path, value), last write per path (`settings.access_log`).
    pub properties: RefCell<Vec<(String, Vec<u8>)>>,
}

impl RequestHost {
    /// Values of `name` after the filter ran, in order.
    pub fn values(&self, name: &str) -> Vec<Vec<u8>> {
        self.headers.borrow().iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
    }
}

impl Host for RequestHost {
    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        self.headers.borrow().iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    fn request_headers(&self) -> Option<Vec<u8>> {
        Some(header_map::encode(self.headers.borrow().iter().map(|(n, v)| (n.as_bytes(), v.as_slice()))))
    }

    fn replace_request_header(&self, name: &str, value: &str) {
        let mut headers = self.headers.borrow_mut();
        headers.retain(|(n, _)| n != name);
        headers.push((name.to_string(), value.as_bytes().to_vec()));
    }

    fn remove_request_header(&self, name: &str) {
        self.headers.borrow_mut().retain(|(n, _)| n != name);
    }

    fn node_label(&self, label: &str) -> Option<Vec<u8>> {
        self.labels.iter().find(|(l, _)| l == label).map(|(_, v)| v.clone())
    }

    fn define_counter(&self, _name: &str) -> Option<u32> {
        Some(1)
    }

    fn increment_counter(&self, _id: u32, _by: u64) {}

    fn call_foreign_function(&self, _name: &str, _args: &[u8]) -> bool {
        true
    }

    fn set_property(&self, path: &str, value: &[u8]) -> bool {
        let mut properties = self.properties.borrow_mut();
        properties.retain(|(p, _)| p != path);
        properties.push((path.to_string(), value.to_vec()));
        true
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_removes_every_value_first() {
        let host = RequestHost::default();
        host.headers.borrow_mut().extend([("x".into(), b"1".to_vec()), ("x".into(), b"2".to_vec())]);
        host.replace_request_header("x", "3");
        assert_eq!(host.values("x"), vec![b"3".to_vec()]);
        host.remove_request_header("x");
        assert!(host.values("x").is_empty());
    }
}
