//! The telemetry filter on the SDK's mock host: Istio's metrics and labels
//! with no configuration, metadata exchange both ways, trace continuation
//! and start in W3C and B3 forms, the published trace properties, and
//! configuration errors.

use wasp_filter_sdk::LogLevel;
use wasp_filter_sdk::testing::{Harness, HttpStream, MetricType};
use wasp_filter_telemetry::{
    METADATA_HEADER, METADATA_ID_HEADER, REQUEST_BYTES, REQUEST_DURATION, REQUESTS_TOTAL,
    RESPONSE_BYTES, TelemetryRoot, Workload, properties,
};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

fn int(value: u64) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

/// A host whose node is the `reviews-v2` workload of `bookinfo`.
fn host(config: &str) -> Harness {
    let mut host = Harness::new(TelemetryRoot::with_seed(7));
    host.set_property(&["node", "id"], b"sidecar~10.0.0.2~reviews-v2-1.bookinfo");
    host.set_property(&["node", "metadata", "WORKLOAD_NAME"], b"reviews-v2");
    host.set_property(&["node", "metadata", "NAMESPACE"], b"bookinfo");
    host.set_property(&["node", "metadata", "APP"], b"reviews");
    host.set_property(&["node", "metadata", "VERSION"], b"v2");
    assert!(host.configure(config), "{:?}", host.logs());
    host
}

fn productpage() -> Workload {
    Workload::named("productpage-v1", "bookinfo", "productpage", "v1")
}

/// One request through the filter answered `status`, with the facts the
/// proxy would know at `on_log`.
fn request(host: &mut Harness, status: u64, extra: &[(&str, &str)]) -> HttpStream {
    let mut stream = host.stream();
    let mut headers = vec![
        (":method", "GET"),
        (":path", "/reviews/1"),
        (":authority", "reviews.bookinfo.svc.cluster.local:9080"),
    ];
    headers.extend_from_slice(extra);
    stream.request_headers(&headers, true);
    host.set_property(&["response", "code"], &int(status));
    host.set_property(&["request", "duration"], &int(12_400_000));
    host.set_property(&["request", "total_size"], &int(180));
    host.set_property(&["response", "total_size"], &int(2048));
    host.set_property(&["response", "flags"], &int(0));
    stream.response_headers(&[(":status", &status.to_string())], true);
    stream
}

/// The labels of a destination-reported request from productpage.
fn inbound_labels(code: &str) -> Vec<(&'static str, String)> {
    let own = |s: &str| s.to_owned();
    vec![
        ("reporter", own("destination")),
        ("source_workload", own("productpage-v1")),
        ("source_canonical_service", own("productpage")),
        ("source_canonical_revision", own("v1")),
        ("source_workload_namespace", own("bookinfo")),
        ("source_principal", own("unknown")),
        ("source_app", own("productpage")),
        ("source_version", own("v1")),
        ("source_cluster", own("unknown")),
        ("destination_workload", own("reviews-v2")),
        ("destination_workload_namespace", own("bookinfo")),
        ("destination_principal", own("unknown")),
        ("destination_app", own("reviews")),
        ("destination_version", own("v2")),
        (
            "destination_service",
            own("reviews.bookinfo.svc.cluster.local"),
        ),
        ("destination_canonical_service", own("reviews")),
        ("destination_canonical_revision", own("v2")),
        ("destination_service_name", own("reviews")),
        ("destination_service_namespace", own("bookinfo")),
        ("destination_cluster", own("unknown")),
        ("request_protocol", own("http")),
        ("response_code", own(code)),
        ("grpc_response_status", own("")),
        ("response_flags", own("-")),
        ("connection_security_policy", own("none")),
    ]
}

fn borrowed<'a>(labels: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    labels.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn with_no_configuration_it_counts_requests_with_istios_labels() {
    let mut host = host("");
    let peer = productpage().encode();
    for status in [200, 200, 503, 200] {
        request(
            &mut host,
            status,
            &[
                (METADATA_HEADER, &peer),
                (METADATA_ID_HEADER, "productpage"),
            ],
        )
        .finish();
    }
    let ok = inbound_labels("200");
    let counted = host
        .labeled_metric(REQUESTS_TOTAL, &borrowed(&ok))
        .unwrap_or_else(|| panic!("{:#?}", host.metric_family(REQUESTS_TOTAL)));
    assert_eq!((counted.kind, counted.value), (MetricType::Counter, 3));
    let failed = host
        .labeled_metric(REQUESTS_TOTAL, &borrowed(&inbound_labels("503")))
        .unwrap();
    assert_eq!(failed.value, 1);
    assert_eq!(host.metric_family(REQUESTS_TOTAL).len(), 2);
    for (family, sample) in [
        (REQUEST_DURATION, 12),
        (REQUEST_BYTES, 180),
        (RESPONSE_BYTES, 2048),
    ] {
        let histogram = host.labeled_metric(family, &borrowed(&ok)).unwrap();
        assert_eq!(histogram.kind, MetricType::Histogram);
        assert_eq!(histogram.samples, [sample; 3], "{family}");
    }
}

/// The request counter of the label set `labels` is at 1.
fn assert_counted_once(host: &Harness, labels: &[(&'static str, String)]) {
    let counted = host.labeled_metric(REQUESTS_TOTAL, &borrowed(labels));
    assert_eq!(
        counted.map(|m| m.value),
        Some(1),
        "{:#?}",
        host.metric_family(REQUESTS_TOTAL)
    );
}

#[test]
fn principals_and_the_security_policy_come_from_the_connection() {
    let mut host = host("");
    let peer = productpage().encode();
    let exchange = [
        (METADATA_HEADER, peer.as_str()),
        (METADATA_ID_HEADER, "productpage"),
    ];
    let local = "spiffe://cluster.local/ns/bookinfo/sa/reviews";
    let remote = "spiffe://cluster.local/ns/bookinfo/sa/productpage";
    // Mutual TLS: both principals, `mutual_tls`.
    host.set_property(&["connection", "mtls"], &[1]);
    host.set_property(&["source", "principal"], remote.as_bytes());
    host.set_property(
        &["connection", "uri_san_local_certificate"],
        local.as_bytes(),
    );
    request(&mut host, 200, &exchange).finish();
    let mut labels = inbound_labels("200");
    let set = |labels: &mut Vec<(&'static str, String)>, name: &str, value: &str| {
        labels.iter_mut().find(|(k, _)| *k == name).unwrap().1 = value.to_owned();
    };
    set(&mut labels, "source_principal", remote);
    set(&mut labels, "destination_principal", local);
    set(&mut labels, "connection_security_policy", "mutual_tls");
    assert_counted_once(&host, &labels);
    // TLS without a client certificate: this side's principal only.
    host.set_property(&["connection", "mtls"], &[0]);
    host.remove_property(&["source", "principal"]);
    request(&mut host, 200, &exchange).finish();
    set(&mut labels, "source_principal", "unknown");
    set(&mut labels, "connection_security_policy", "none");
    assert_counted_once(&host, &labels);
    assert_eq!(host.metric_family(REQUESTS_TOTAL).len(), 2);
}

#[test]
fn a_destination_takes_the_peers_headers_and_answers_with_its_own() {
    let mut host = host("{}");
    let stream = request(
        &mut host,
        200,
        &[
            (METADATA_HEADER, &productpage().encode()),
            (METADATA_ID_HEADER, "productpage"),
        ],
    );
    assert_eq!(stream.request_header(METADATA_HEADER), None);
    assert_eq!(stream.request_header(METADATA_ID_HEADER), None);
    let answered = stream
        .response_header(METADATA_HEADER)
        .expect("own metadata");
    let own = Workload::decode(&answered).unwrap();
    assert_eq!(
        (own.name.as_str(), own.app.as_str()),
        ("reviews-v2", "reviews")
    );
    assert_eq!(
        stream.response_header(METADATA_ID_HEADER).as_deref(),
        Some("sidecar~10.0.0.2~reviews-v2-1.bookinfo")
    );
    stream.finish();
}

#[test]
fn a_source_sends_its_metadata_and_labels_the_destination_from_the_answer() {
    let mut host = host(r#"{"reporter": "source"}"#);
    let mut stream = host.stream();
    stream.request_headers(
        &[
            (":method", "GET"),
            (":path", "/"),
            (":authority", "ratings:9080"),
        ],
        true,
    );
    let sent = stream.request_header(METADATA_HEADER).expect("sent");
    assert_eq!(Workload::decode(&sent).unwrap().name, "reviews-v2");
    let ratings = Workload::named("ratings-v1", "bookinfo", "ratings", "v1");
    host.set_property(&["response", "code"], &int(200));
    stream.response_headers(
        &[(":status", "200"), (METADATA_HEADER, &ratings.encode())],
        true,
    );
    assert_eq!(stream.response_header(METADATA_HEADER), None);
    stream.finish();
    let series = host.metric_family(REQUESTS_TOTAL);
    assert_eq!(series.len(), 1);
    let name = &series[0].name;
    for label in [
        r#"reporter="source""#,
        r#"source_workload="reviews-v2""#,
        r#"destination_workload="ratings-v1""#,
        r#"destination_app="ratings""#,
        r#"destination_service="ratings""#,
        r#"destination_service_namespace="bookinfo""#,
        r#"connection_security_policy="unknown""#,
    ] {
        assert!(name.contains(label), "{label} in {name}");
    }
}

#[test]
fn grpc_requests_are_labeled_with_their_grpc_status_and_flags() {
    let mut host = host("");
    let mut stream = host.stream();
    stream.request_headers(
        &[
            (":method", "POST"),
            (":path", "/pkg.Svc/Do"),
            ("content-type", "application/grpc"),
        ],
        true,
    );
    host.set_property(&["response", "code"], &int(200));
    host.set_property(&["response", "grpc_status"], &int(14));
    host.set_property(&["response", "flags"], &int(0x20));
    stream.finish();
    let name = &host.metric_family(REQUESTS_TOTAL)[0].name;
    for label in [
        r#"request_protocol="grpc""#,
        r#"grpc_response_status="14""#,
        r#"response_flags="UF""#,
        r#"source_workload="unknown""#,
        r#"destination_service="unknown""#,
    ] {
        assert!(name.contains(label), "{label} in {name}");
    }
}

#[test]
fn a_w3c_trace_is_continued_with_a_new_span() {
    let mut host = host("");
    let incoming = format!("00-{TRACE}-{SPAN}-01");
    let stream = request(
        &mut host,
        200,
        &[("traceparent", &incoming), ("tracestate", "vendor=opaque")],
    );
    let outgoing = stream.request_header("traceparent").unwrap();
    let parts: Vec<&str> = outgoing.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE, "01"),
        "{outgoing}"
    );
    assert_ne!(parts[2], SPAN);
    assert_eq!(parts[2].len(), 16);
    assert_eq!(
        stream.request_header("tracestate").as_deref(),
        Some("vendor=opaque")
    );
    // B3 forms carry the same ids.
    assert_eq!(
        stream.request_header("x-b3-traceid").as_deref(),
        Some(TRACE)
    );
    assert_eq!(
        stream.request_header("x-b3-spanid").as_deref(),
        Some(parts[2])
    );
    assert_eq!(
        stream.request_header("x-b3-parentspanid").as_deref(),
        Some(SPAN)
    );
    assert_eq!(stream.request_header("x-b3-sampled").as_deref(), Some("1"));
    // The caller spoke W3C only: no B3 single header (as Envoy's Zipkin
    // tracer, which writes the multi headers only).
    assert_eq!(stream.request_header("b3"), None);
    // Later filters read the ids as properties.
    let property = |name: &str| {
        host.property(&[name])
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(property(properties::TRACE_ID).as_deref(), Some(TRACE));
    assert_eq!(property(properties::SPAN_ID).as_deref(), Some(parts[2]));
    assert_eq!(property(properties::PARENT_SPAN_ID).as_deref(), Some(SPAN));
    assert_eq!(property(properties::SAMPLED).as_deref(), Some("1"));
    stream.finish();
}

#[test]
fn an_unsampled_trace_stays_unsampled() {
    let mut host = host("");
    let stream = request(
        &mut host,
        200,
        &[("traceparent", &format!("00-{TRACE}-{SPAN}-00"))],
    );
    assert!(
        stream
            .request_header("traceparent")
            .unwrap()
            .ends_with("-00")
    );
    assert_eq!(stream.request_header("x-b3-sampled").as_deref(), Some("0"));
    stream.finish();
}

#[test]
fn b3_multi_and_single_traces_are_continued() {
    let mut host = host("");
    let short = "a3ce929d0e0e4736";
    let stream = request(
        &mut host,
        200,
        &[
            ("x-b3-traceid", short),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ],
    );
    let traceparent = stream.request_header("traceparent").unwrap();
    assert!(
        traceparent.starts_with(&format!("00-0000000000000000{short}-")),
        "{traceparent}"
    );
    assert!(traceparent.ends_with("-01"));
    assert_eq!(
        stream.request_header("x-b3-traceid").as_deref(),
        Some(short)
    );
    assert_eq!(
        stream.request_header("x-b3-parentspanid").as_deref(),
        Some(SPAN)
    );
    // The caller's headers are replaced, not joined by a second value.
    let trace_headers: Vec<(String, String)> = stream
        .request_header_list()
        .into_iter()
        .filter(|(name, _)| name.starts_with("x-b3-"))
        .collect();
    let mut names: Vec<&str> = trace_headers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "x-b3-parentspanid",
            "x-b3-sampled",
            "x-b3-spanid",
            "x-b3-traceid"
        ],
        "{trace_headers:?}"
    );
    assert_ne!(stream.request_header("x-b3-spanid").as_deref(), Some(SPAN));
    stream.finish();

    let stream = request(&mut host, 200, &[("b3", &format!("{TRACE}-{SPAN}-0"))]);
    let b3 = stream.request_header("b3").unwrap();
    assert!(
        b3.starts_with(&format!("{TRACE}-")) && b3.ends_with(&format!("-0-{SPAN}")),
        "{b3}"
    );
    assert!(
        stream
            .request_header("traceparent")
            .unwrap()
            .ends_with("-00")
    );
    stream.finish();
}

#[test]
fn a_trace_is_started_when_absent_sampled_by_the_configured_percentage() {
    let mut host = host(r#"{"tracing": {"sampling": 100}}"#);
    let stream = request(&mut host, 200, &[]);
    let traceparent = stream.request_header("traceparent").unwrap();
    assert_eq!(traceparent.len(), 55);
    assert!(traceparent.ends_with("-01"));
    assert_eq!(stream.request_header("x-b3-parentspanid"), None);
    assert_eq!(host.property(&[properties::PARENT_SPAN_ID]), None);
    stream.finish();
    let other = request(&mut host, 200, &[]);
    assert_ne!(
        other.request_header("traceparent").unwrap()[3..35],
        traceparent[3..35]
    );
    other.finish();

    let mut host = self::host(r#"{"tracing": {"sampling": 0}}"#);
    let stream = request(&mut host, 200, &[]);
    assert!(
        stream
            .request_header("traceparent")
            .unwrap()
            .ends_with("-00")
    );
    stream.finish();
}

#[test]
fn the_b3_single_header_is_written_when_received_always_or_never_as_configured() {
    let sent = format!("{TRACE}-{SPAN}-1");
    for (config, with_b3, without_b3) in [
        ("{}", true, false),
        (
            r#"{"tracing": {"b3_single": "when_received"}}"#,
            true,
            false,
        ),
        (r#"{"tracing": {"b3_single": true}}"#, true, true),
        (r#"{"tracing": {"b3_single": false}}"#, false, false),
    ] {
        let mut host = host(config);
        let stream = request(&mut host, 200, &[("b3", &sent)]);
        let b3 = stream.request_header("b3").unwrap();
        if with_b3 {
            assert!(b3.starts_with(&format!("{TRACE}-")), "{config}: {b3}");
            assert!(b3.ends_with(&format!("-1-{SPAN}")), "{config}: {b3}");
            assert_ne!(b3, sent, "{config}: a new span id");
        } else {
            assert_eq!(b3, sent, "{config}: the caller's header passes untouched");
        }
        stream.finish();
        let stream = request(&mut host, 200, &[]);
        let b3 = stream.request_header("b3");
        assert_eq!(
            b3.is_some(),
            without_b3,
            "{config}: a request without: {b3:?}"
        );
        assert!(stream.request_header("x-b3-traceid").is_some());
        stream.finish();
    }
}

#[test]
fn propagation_can_be_limited_to_some_formats_or_turned_off() {
    let mut host = host(r#"{"tracing": {"b3_multi": false, "b3_single": false}}"#);
    let stream = request(&mut host, 200, &[]);
    assert!(stream.request_header("traceparent").is_some());
    assert_eq!(stream.request_header("x-b3-traceid"), None);
    assert_eq!(stream.request_header("b3"), None);
    stream.finish();
    let mut host = self::host(r#"{"tracing": {"enabled": false}, "metadata_exchange": false}"#);
    let stream = request(&mut host, 200, &[]);
    assert_eq!(stream.request_header("traceparent"), None);
    assert_eq!(stream.response_header(METADATA_HEADER), None);
    stream.finish();
    assert_eq!(host.metric_family(REQUESTS_TOTAL).len(), 1);
}

#[test]
fn bad_configurations_are_refused_with_the_reason() {
    let mut host = Harness::new(TelemetryRoot::default());
    assert!(!host.configure(r#"{"tracing": {"sampling": 150}}"#));
    assert!(host.logged(LogLevel::Error, "tracing.sampling: 150"));
    assert!(!host.configure(r#"{"reporter": "sidecar"}"#));
    assert!(host.logged(LogLevel::Error, "unknown variant `sidecar`"));
    assert!(!host.configure(r#"{"tracing": {"sampled": 1}}"#));
    assert!(host.logged(LogLevel::Error, "unknown field `sampled`"));
    assert!(!host.configure(r#"{"tracing": {"b3_single": "sometimes"}}"#));
    assert!(host.logged(
        LogLevel::Error,
        r#"b3_single: `sometimes` is not true, false or "when_received""#
    ));
}

#[test]
fn series_stay_exact_per_label_set_across_peers_authorities_and_a_full_cache() {
    let mut host = host("{}");
    let peers = [
        productpage().encode(),
        Workload::named("ratings-v1", "bookinfo", "ratings", "v1").encode(),
    ];
    // More distinct authorities than the filter caches fact sets for, so
    // its cache starts afresh on the way; the first label set comes back.
    for i in 0..1100 {
        let authority = format!("svc-{}.bookinfo.svc.cluster.local", i % 1050);
        let mut stream = host.stream();
        let headers = [
            (":method", "GET"),
            (":path", "/"),
            (":authority", authority.as_str()),
            (METADATA_HEADER, peers[i % 2].as_str()),
        ];
        stream.request_headers(&headers, true);
        host.set_property(&["response", "code"], &int(200));
        stream.response_headers(&[(":status", "200")], true);
        stream.finish();
    }
    let family = host.metric_family(REQUESTS_TOTAL);
    assert_eq!(family.len(), 1050, "one series per authority");
    assert_eq!(family.iter().map(|m| m.value).sum::<i64>(), 1100);
    let first = family
        .iter()
        .find(|m| {
            m.name
                .contains("destination_service=\"svc-0.bookinfo.svc.cluster.local\"")
        })
        .expect("the first authority's series");
    assert_eq!(first.value, 2, "{}", first.name);
    assert!(
        first.name.contains("source_workload=\"productpage-v1\""),
        "{}",
        first.name
    );
    let second = family
        .iter()
        .find(|m| {
            m.name
                .contains("destination_service=\"svc-1.bookinfo.svc.cluster.local\"")
        })
        .unwrap();
    assert!(
        second.name.contains("source_workload=\"ratings-v1\""),
        "{}",
        second.name
    );
}
