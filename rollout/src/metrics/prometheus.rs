//! Counts from a Prometheus server: instant queries (`GET /api/v1/query?query=…&time=T`, one `T` per reading so
//! both arms are seen at the same instant), **per series**, never `sum`med in PromQL: a restarted proxy's
//! series drops to 0 and a replaced pod's series ends, and only per series can [`super::tally`] tell that from
//! traffic going down. Series present at the first reading are the baseline; series that appear later started
//! after the source did and count from 0; series that disappear keep what they counted.
//!
//! PromQL per arm (`C`: the arm's cluster; `SEL`: `reporter="R",destination_service_name="S",
//! destination_service_namespace="N",destination_version="V"`, the namespace only when given; `B`: the latency
//! bound in ms):
//!
//! | count | plain Envoy scraped from `/stats/prometheus` | Istio standard metrics |
//! |---|---|---|
//! | requests | `envoy_cluster_upstream_rq_completed{envoy_cluster_name="C"}` | `istio_requests_total{SEL}` |
//! | errors | `envoy_cluster_upstream_rq_xx{envoy_cluster_name="C",envoy_response_code_class="5"}` | `istio_requests_total{SEL,response_code=~"5.."}` |
//! | slow: all | `envoy_cluster_upstream_rq_time_count{envoy_cluster_name="C"}` | `istio_request_duration_milliseconds_count{SEL}` |
//! | slow: within B | `envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="C",le=~`B`}` | `istio_request_duration_milliseconds_bucket{SEL,le=~`B`}` |
//!
//! slow = all − within B, joined per series on every label but `le`. `le=~` matches each spelling of B
//! ([`super::latency::le_regex`]: Envoy writes `250`, Prometheus 3 stores `250.0`). Istio's names and labels
//! are its standard metrics (istio.io, "Istio Standard Metrics": `istio_requests_total`,
//! `istio_request_duration_milliseconds`; labels `reporter`, `destination_service_name`,
//! `destination_service_namespace`, `destination_version`, `response_code`); `reporter="source"` counts at
//! the callers' sidecars, where the split is made. Why `upstream_rq_completed`: see [`super::envoy_admin`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::http::{Client, Failure};
use super::latency::{le_regex, not_a_bound};
use super::stats_text::{as_count, parse_value};
use super::tally::{FirstSeen, Track};
use super::{check_latency, counts_from, Arm, Event, MetricsSource, PrometheusConfig, PrometheusFlavor, Reading};

/// How long one query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// One series of an answer: all of its labels, and its value.
pub type Series = (BTreeMap<String, String>, f64);

/// A series' labels, sorted, without `__name__` and `le`.
pub type Labels = Vec<(String, String)>;

/// The instant queries of one arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArmQueries {
    pub requests: String,
    pub errors: String,
    /// When latency is judged.
    pub latency: Option<LatencyQueries>,
}

/// The latency histogram's queries of one arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyQueries {
    /// Requests timed (`_count`).
    pub all: String,
    /// Those within the bound (`_bucket{le=~B}`).
    pub within: String,
    /// The histogram's bounds (`count by (le) (_bucket)`), asked only to explain a bound that is not one.
    pub bounds: String,
}

/// A PromQL double-quoted string literal.
fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The PromQL for one arm (see the module doc's table).
pub fn arm_queries(flavor: &PrometheusFlavor, arm: Arm, bound: Option<f64>) -> ArmQueries {
    let (requests, errors, count, bucket, selector) = match flavor {
        PrometheusFlavor::Envoy { baseline_cluster, canary_cluster } => {
            let cluster = if arm == Arm::Baseline { baseline_cluster } else { canary_cluster };
            let sel = format!("envoy_cluster_name={}", quote(cluster));
            (
                format!("envoy_cluster_upstream_rq_completed{{{sel}}}"),
                format!("envoy_cluster_upstream_rq_xx{{{sel},envoy_response_code_class=\"5\"}}"),
                "envoy_cluster_upstream_rq_time_count",
                "envoy_cluster_upstream_rq_time_bucket",
                sel,
            )
        }
        PrometheusFlavor::Istio { service, namespace, baseline_version, canary_version, reporter } => {
            let version = if arm == Arm::Baseline { baseline_version } else { canary_version };
            let mut sel = format!("reporter={},destination_service_name={}", quote(reporter), quote(service));
            if let Some(ns) = namespace {
                sel.push_str(&format!(",destination_service_namespace={}", quote(ns)));
            }
            sel.push_str(&format!(",destination_version={}", quote(version)));
            (
                format!("istio_requests_total{{{sel}}}"),
                format!("istio_requests_total{{{sel},response_code=~\"5..\"}}"),
                "istio_request_duration_milliseconds_count",
                "istio_request_duration_milliseconds_bucket",
                sel,
            )
        }
    };
    let latency = bound.map(|b| LatencyQueries {
        all: format!("{count}{{{selector}}}"),
        within: format!("{bucket}{{{selector},le=~{}}}", le_regex(b)),
        bounds: format!("count by (le) ({bucket}{{{selector}}})"),
    });
    ArmQueries { requests, errors, latency }
}

/// The series of an instant-query answer (`resultType` `vector`), each with its labels and value.
pub fn parse_vector(body: &str) -> Result<Vec<Series>, String> {
    let answer: Value = serde_json::from_str(body).map_err(|e| format!("not a Prometheus API answer ({e})"))?;
    if answer["status"] != "success" {
        let why = answer["error"].as_str().unwrap_or("no reason given");
        return Err(format!("Prometheus refused the query: {why}"));
    }
    let data = &answer["data"];
    if data["resultType"] != "vector" {
        return Err(format!("expected an instant vector, got `{}`", data["resultType"]));
    }
    let result = data["result"].as_array().ok_or("the answer has no `data.result` list")?;
    result
        .iter()
        .map(|series| {
            let labels = series["metric"]
                .as_object()
                .ok_or("a series without `metric` labels")?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let text =
                series["value"].get(1).and_then(Value::as_str).ok_or("a series without `value: [time, \"v\"]`")?;
            let value = parse_value(text).ok_or_else(|| format!("a series value `{text}` is not a number"))?;
            Ok((labels, value))
        })
        .collect()
}

/// A series' identity for the tally: its labels but `__name__` (the arm and event are known) and `le`.
fn identity(labels: &BTreeMap<String, String>) -> Labels {
    labels.iter().filter(|(k, _)| *k != "__name__" && *k != "le").map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Counter series as counts; a value that is no count (negative, NaN) is an error, not a zero.
fn counts(series: Vec<Series>, query: &str) -> Result<BTreeMap<Labels, u64>, String> {
    series
        .into_iter()
        .map(|(labels, v)| {
            let id = identity(&labels);
            as_count(v).map(|c| (id, c)).ok_or_else(|| format!("`{query}` gave {v}, not a count"))
        })
        .collect()
}

/// slow = all − within the bound, per series; a series with no bucket at the bound is left out.
pub fn slow_per_series(all: &BTreeMap<Labels, u64>, within: &BTreeMap<Labels, u64>) -> BTreeMap<Labels, u64> {
    all.iter().filter_map(|(id, total)| within.get(id).map(|w| (id.clone(), total.saturating_sub(*w)))).collect()
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    arm: Arm,
    event: Event,
    labels: Labels,
}

/// The Prometheus source (see the module doc).
pub struct Prometheus {
    cfg: PrometheusConfig,
    base: String,
    client: Client,
    tracks: BTreeMap<SeriesKey, Track>,
    read_once: bool,
}

impl Prometheus {
    pub fn new(cfg: PrometheusConfig) -> Result<Prometheus, String> {
        let base = check_url(&cfg.url)?;
        check_flavor(&cfg.flavor)?;
        check_latency(cfg.latency_bound_ms)?;
        Ok(Prometheus {
            cfg,
            base,
            client: Client::new(QUERY_TIMEOUT, true),
            tracks: BTreeMap::new(),
            read_once: false,
        })
    }

    fn query(&self, promql: &str, time: &str) -> Result<Vec<Series>, String> {
        let url = format!("{}/api/v1/query", self.base);
        match self.client.get(&url, &[("query", promql), ("time", time)]) {
            Ok(body) => parse_vector(&body).map_err(|e| format!("{e} (query `{promql}`)")),
            // Prometheus explains a refused query in a JSON body with a 4xx status.
            Err(Failure::Status(code, body)) => Err(match parse_vector(&body) {
                Err(why) if why.starts_with("Prometheus refused") => format!("{why} (query `{promql}`)"),
                _ => format!("Prometheus at {} {} (query `{promql}`)", self.base, Failure::Status(code, body)),
            }),
            Err(failure) => Err(format!("Prometheus at {} {failure}", self.base)),
        }
    }

    /// The bounds of a histogram that has no bucket at the configured bound, for the error message.
    fn bounds_of(&self, bounds_query: &str, time: &str) -> Vec<f64> {
        let mut bounds: Vec<f64> = self
            .query(bounds_query, time)
            .unwrap_or_default()
            .iter()
            .filter_map(|(labels, _)| labels.get("le").and_then(|le| parse_value(le)))
            .filter(|b| b.is_finite())
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        bounds
    }

    /// Every series of every arm and event at instant `time`.
    fn fetch(&self, time: &str) -> Result<BTreeMap<SeriesKey, u64>, String> {
        let mut out = BTreeMap::new();
        for arm in Arm::BOTH {
            let q = arm_queries(&self.cfg.flavor, arm, self.cfg.latency_bound_ms);
            let mut add = |event, series: BTreeMap<Labels, u64>| {
                out.extend(series.into_iter().map(|(labels, v)| (SeriesKey { arm, event, labels }, v)));
            };
            add(Event::Requests, counts(self.query(&q.requests, time)?, &q.requests)?);
            add(Event::Errors, counts(self.query(&q.errors, time)?, &q.errors)?);
            if let (Some(lq), Some(bound)) = (&q.latency, self.cfg.latency_bound_ms) {
                let all = counts(self.query(&lq.all, time)?, &lq.all)?;
                let within = counts(self.query(&lq.within, time)?, &lq.within)?;
                if !all.is_empty() && within.is_empty() {
                    return Err(not_a_bound(bound, &self.bounds_of(&lq.bounds, time)));
                }
                add(Event::Slow, slow_per_series(&all, &within));
            }
        }
        Ok(out)
    }
}

/// `http://HOST[:PORT][/PREFIX]`, without a trailing `/`.
fn check_url(url: &str) -> Result<String, String> {
    if url.starts_with("https://") {
        return Err(format!(
            "Prometheus URL `{url}`: https is not supported (the client is built without TLS); reach it over \
             http, e.g. through `kubectl port-forward`"
        ));
    }
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("Prometheus URL `{url}` must start with http://"))?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#']) {
        return Err(format!("Prometheus URL `{url}` must be http://HOST[:PORT][/PREFIX], without a query"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn check_flavor(flavor: &PrometheusFlavor) -> Result<(), String> {
    let named = |what: &str, v: &str| if v.is_empty() { Err(format!("the {what} must be named")) } else { Ok(()) };
    match flavor {
        PrometheusFlavor::Envoy { baseline_cluster, canary_cluster } => {
            named("baseline cluster", baseline_cluster)?;
            named("canary cluster", canary_cluster)?;
            if baseline_cluster == canary_cluster {
                return Err(format!("baseline and canary are the same cluster `{baseline_cluster}`"));
            }
        }
        PrometheusFlavor::Istio { service, namespace, baseline_version, canary_version, reporter } => {
            named("service", service)?;
            named("baseline version", baseline_version)?;
            named("canary version", canary_version)?;
            if namespace.as_deref() == Some("") {
                return Err("the namespace, when given, must be named".into());
            }
            if baseline_version == canary_version {
                return Err(format!("baseline and canary are the same version `{baseline_version}`"));
            }
            if reporter != "source" && reporter != "destination" {
                return Err(format!("reporter `{reporter}` must be `source` or `destination`"));
            }
        }
    }
    Ok(())
}

/// Seconds since the epoch, as the `time` parameter.
fn unix_now() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{:.3}", now.as_secs_f64())
}

/// A few label sets for a note.
fn examples(keys: &[&SeriesKey]) -> String {
    let shown: Vec<String> = keys
        .iter()
        .take(3)
        .map(|k| {
            let labels: Vec<String> = k.labels.iter().map(|(l, v)| format!("{l}={v:?}")).collect();
            format!("{} {:?} {{{}}}", k.arm.name(), k.event, labels.join(","))
        })
        .collect();
    let more = keys.len().saturating_sub(3);
    if more > 0 {
        format!("{} and {more} more", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

impl MetricsSource for Prometheus {
    fn read(&mut self) -> Result<Reading, String> {
        let series = self.fetch(&unix_now())?;
        let first = if self.read_once { FirstSeen::FromZero } else { FirstSeen::Baseline };
        let mut reset = Vec::new();
        for (key, value) in &series {
            match self.tracks.get_mut(key) {
                Some(track) => {
                    if track.advance(*value) {
                        reset.push(key);
                    }
                }
                None => {
                    self.tracks.insert(key.clone(), Track::first(*value, first));
                }
            }
        }
        self.read_once = true;
        let present: BTreeSet<&SeriesKey> = series.keys().collect();
        let gone: Vec<&SeriesKey> = self.tracks.keys().filter(|k| !present.contains(k)).collect();
        let mut notes = Vec::new();
        if !reset.is_empty() {
            notes.push(format!(
                "{} series reset (a proxy restarted); their new counts are added to what they had counted: {}",
                reset.len(),
                examples(&reset)
            ));
        }
        if !gone.is_empty() {
            notes.push(format!(
                "{} series no longer reported (a proxy gone or not scraped); their last counts are kept: {}",
                gone.len(),
                examples(&gone)
            ));
        }
        let tracks = &self.tracks;
        let counts = counts_from(|arm, event| {
            tracks.iter().filter(|(k, _)| k.arm == arm && k.event == event).map(|(_, t)| t.counted()).sum()
        });
        Ok(Reading { counts, notes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn istio(namespace: Option<&str>) -> PrometheusFlavor {
        PrometheusFlavor::Istio {
            service: "forecast".into(),
            namespace: namespace.map(str::to_string),
            baseline_version: "v1".into(),
            canary_version: "v2".into(),
            reporter: "source".into(),
        }
    }

    #[test]
    fn istio_queries() {
        let q = arm_queries(&istio(Some("weather")), Arm::Canary, Some(250.0));
        let sel = r#"reporter="source",destination_service_name="forecast",destination_service_namespace="weather",destination_version="v2""#;
        assert_eq!(q.requests, format!("istio_requests_total{{{sel}}}"));
        assert_eq!(q.errors, format!("istio_requests_total{{{sel},response_code=~\"5..\"}}"));
        assert_eq!(
            q.latency,
            Some(LatencyQueries {
                all: format!("istio_request_duration_milliseconds_count{{{sel}}}"),
                within: format!("istio_request_duration_milliseconds_bucket{{{sel},le=~`250|250\\.0`}}"),
                bounds: format!("count by (le) (istio_request_duration_milliseconds_bucket{{{sel}}})"),
            })
        );
        let q = arm_queries(&istio(None), Arm::Baseline, None);
        assert_eq!(
            q.requests,
            r#"istio_requests_total{reporter="source",destination_service_name="forecast",destination_version="v1"}"#
        );
        assert_eq!(q.latency, None);
    }

    #[test]
    fn envoy_queries_quote_names() {
        let flavor = PrometheusFlavor::Envoy { baseline_cluster: "a\"b".into(), canary_cluster: "c\\d".into() };
        let q = arm_queries(&flavor, Arm::Baseline, None);
        assert_eq!(q.requests, r#"envoy_cluster_upstream_rq_completed{envoy_cluster_name="a\"b"}"#);
        let q = arm_queries(&flavor, Arm::Canary, Some(0.5));
        assert_eq!(
            q.errors,
            r#"envoy_cluster_upstream_rq_xx{envoy_cluster_name="c\\d",envoy_response_code_class="5"}"#
        );
        assert_eq!(
            q.latency.unwrap().within,
            r#"envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="c\\d",le=~`0\.5`}"#
        );
    }

    /// An answer as Prometheus's API writes it for the Istio flavour (two source workloads, two 5xx codes).
    const ISTIO_ANSWER: &str = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"__name__":"istio_requests_total","reporter":"source","destination_service_name":"forecast",
          "destination_version":"v2","response_code":"500","source_workload":"frontend-v1","instance":"10.0.0.7:15020"},
         "value":[1765065600.123,"17"]},
        {"metric":{"__name__":"istio_requests_total","reporter":"source","destination_service_name":"forecast",
          "destination_version":"v2","response_code":"503","source_workload":"frontend-v2","instance":"10.0.0.8:15020"},
         "value":[1765065600.123,"3"]}]}}"#;

    #[test]
    fn parses_answers_and_refusals() {
        let series = parse_vector(ISTIO_ANSWER).unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!((series[0].0["response_code"].as_str(), series[0].1), ("500", 17.0));
        let c = counts(series, "q").unwrap();
        assert_eq!(c.values().sum::<u64>(), 20);
        assert!(c.keys().all(|l| l.iter().all(|(k, _)| k != "__name__")));
        let refused = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected <EOF>"}"#;
        assert_eq!(
            parse_vector(refused).unwrap_err(),
            "Prometheus refused the query: 1:5: parse error: unexpected <EOF>"
        );
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_vector(matrix).unwrap_err().contains("instant vector"));
        assert!(parse_vector("<html>").is_err());
        let nan = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert!(counts(parse_vector(nan).unwrap(), "q").unwrap_err().contains("not a count"));
    }

    #[test]
    fn slow_is_joined_per_series() {
        let l = |i: &str| vec![("instance".to_string(), i.to_string())];
        let all: BTreeMap<Labels, u64> = [(l("a"), 10), (l("b"), 5), (l("c"), 2)].into();
        let within: BTreeMap<Labels, u64> = [(l("a"), 7), (l("b"), 5)].into();
        assert_eq!(slow_per_series(&all, &within), [(l("a"), 3), (l("b"), 0)].into());
    }

    #[test]
    fn config_is_checked() {
        let cfg = |url: &str, flavor: PrometheusFlavor, bound| PrometheusConfig {
            url: url.into(),
            flavor,
            latency_bound_ms: bound,
        };
        let err = |c| Prometheus::new(c).err().unwrap_or_default();
        assert!(err(cfg("https://p:9090", istio(None), None)).contains("https is not supported"));
        assert!(err(cfg("p:9090", istio(None), None)).contains("must start with http://"));
        assert!(err(cfg("http://p:9090/?x=1", istio(None), None)).contains("without a query"));
        assert!(err(cfg("http://p:9090", istio(None), Some(300.0))).contains("pick one of"));
        assert!(err(cfg("http://p:9090", istio(Some("")), None)).contains("namespace"));
        let same = PrometheusFlavor::Envoy { baseline_cluster: "x".into(), canary_cluster: "x".into() };
        assert!(err(cfg("http://p:9090", same, None)).contains("same cluster"));
        let p = Prometheus::new(cfg("http://p:9090/prom/", istio(None), Some(250.0))).unwrap();
        assert_eq!(p.base, "http://p:9090/prom");
    }
}
