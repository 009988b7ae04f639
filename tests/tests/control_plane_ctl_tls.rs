//! `waspctl` on wasp-cp's TLS endpoint, through the real binaries: it
//! verifies the control plane's certificate against `--ca-file` (the trust
//! bundle wasp-cp serves at `/trust-bundle`) and still authorises with the
//! token; a certificate from another CA or for other names, a missing
//! `--ca-file` or a `--ca-file` for a plaintext URL are one clear error
//! each.

use wasp_e2e::mesh::TestCa;
use wasp_e2e::{Config, ControlPlane, Listener, Route, free_addr};

fn document() -> String {
    Config::new()
        .listener(Listener::new("main", free_addr()).route(Route::prefix("/").direct(200, "tls")))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waspctl_uses_the_tls_endpoint_with_a_verified_certificate_and_the_token() {
    let cp = ControlPlane::start().await;
    let bundle = wasp_e2e::client::get(&cp.http_url("/trust-bundle"))
        .await
        .unwrap();
    assert_eq!(bundle.status, 200);
    assert!(
        bundle.text().starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        bundle.text()
    );
    let ca_file = cp.dir().join("bundle.pem");
    std::fs::write(&ca_file, bundle.text()).unwrap();
    let ca_file = ca_file.to_str().unwrap();
    let doc = cp.dir().join("doc.yaml");
    std::fs::write(&doc, document()).unwrap();
    let doc = doc.to_str().unwrap();

    // The server certificate names localhost and 127.0.0.1 by default.
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}", cp.tls_addr().port());
        let applied = ControlPlane::ctl_for_url(
            &url,
            &["--ca-file", ca_file, "-o", "json", "apply", "-f", doc],
        );
        assert!(applied.json()["version"].as_u64().is_some());
        let versions = ControlPlane::ctl_for_url(
            &url,
            &["--ca-file", ca_file, "-o", "json", "get", "versions"],
        );
        assert!(versions.ok().contains("\"version\""), "{versions:?}");
    }
    let url = format!("https://127.0.0.1:{}", cp.tls_addr().port());

    // Over TLS the token still decides: a wrong one cannot write.
    let wrong_token = cp.dir().join("wrong-token");
    std::fs::write(&wrong_token, "not-the-token\n").unwrap();
    let refused = ControlPlane::ctl_for_url(
        &url,
        &[
            "--ca-file",
            ca_file,
            "--token-file",
            wrong_token.to_str().unwrap(),
            "apply",
            "-f",
            doc,
        ],
    );
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.contains("token"), "{}", refused.stderr);

    // A bundle that does not hold wasp-cp's root: the certificate is
    // refused, and the error says so.
    let other = TestCa::new("another root");
    let other_file = other.write(cp.dir(), "other.pem");
    let unverified = ControlPlane::ctl_for_url(
        &url,
        &["--ca-file", other_file.to_str().unwrap(), "get", "versions"],
    );
    assert_eq!(unverified.code, Some(1), "{unverified:?}");
    assert!(
        unverified.stderr.contains(&format!(
            "{url}: the control plane's certificate does not verify against --ca-file {}",
            other_file.display()
        )),
        "{}",
        unverified.stderr
    );
    assert!(
        unverified
            .stderr
            .contains("it is not issued by a root of that file"),
        "{}",
        unverified.stderr
    );
    assert_eq!(
        unverified.stderr.lines().count(),
        1,
        "{}",
        unverified.stderr
    );

    // A certificate for other names than the URL's host is refused too.
    let named = ControlPlane::start_with(&["--tls-san", "localhost"]).await;
    let named_bundle = wasp_e2e::client::get(&named.http_url("/trust-bundle"))
        .await
        .unwrap()
        .text();
    let named_file = named.dir().join("bundle.pem");
    std::fs::write(&named_file, named_bundle).unwrap();
    let by_address = ControlPlane::ctl_for_url(
        &format!("https://127.0.0.1:{}", named.tls_addr().port()),
        &["--ca-file", named_file.to_str().unwrap(), "get", "versions"],
    );
    assert_eq!(by_address.code, Some(1), "{by_address:?}");
    assert!(
        by_address
            .stderr
            .contains("it does not name the host of --server"),
        "{}",
        by_address.stderr
    );

    // https without --ca-file, and --ca-file for a plaintext URL.
    let no_ca = ControlPlane::ctl_for_url(&url, &["get", "versions"]);
    assert_eq!(no_ca.code, Some(1));
    assert!(
        no_ca.stderr.contains("https needs --ca-file"),
        "{}",
        no_ca.stderr
    );
    let plain = ControlPlane::ctl_for_url(&cp.url(), &["--ca-file", ca_file, "get", "versions"]);
    assert_eq!(plain.code, Some(1));
    assert!(
        plain
            .stderr
            .contains("--ca-file needs an https:// --server"),
        "{}",
        plain.stderr
    );
    // A missing file names itself.
    let missing =
        ControlPlane::ctl_for_url(&url, &["--ca-file", "/nonexistent.pem", "get", "versions"]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("--ca-file /nonexistent.pem"),
        "{}",
        missing.stderr
    );
}
