//! The README's main command: `examples/demo/run.sh --once` builds what it
//! needs, starts the demo (wasp in front of the demo services, the shipped
//! filters, wasp-cp with a second proxy) and prints its sample requests.
//! Every feature it shows must show what it claims. The demo binds fixed
//! ports (8080–8090, 9901–9902, 7070–7071), so this is the only test here.

use std::process::Command;

#[test]
fn the_demo_shows_routing_shipped_filters_and_the_control_plane() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new("bash")
        .arg(root.join("examples/demo/run.sh"))
        .arg("--once")
        .current_dir(&root)
        .output()
        .expect("running examples/demo/run.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "run.sh failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let after = |marker: &str| {
        stdout
            .split_once(marker)
            .unwrap_or_else(|| panic!("no `{marker}` in the demo's output:\n{stdout}"))
            .1
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    assert_eq!(after("# no token\n"), "403");
    assert_eq!(
        after("# a forged signature\n"),
        "Jwt verification fails (401)"
    );
    assert_eq!(after("the token stripped\n"), "\"x-user\": \"bob\"");
    assert_eq!(after("# bob is no admin\n"), "RBAC: access denied (403)");
    assert_eq!(
        after("$alice\" http://127.0.0.1:8080/secure/admin\n"),
        "200"
    );
    for expected in [
        "x-served-by: wasp-demo",
        "fault_chaos_aborts_injected",
        "mirror_shadowing_mirrored 5",
        "jwt_authn_rejected_bad_signature_total 1",
        "authz_policy_admins_only_denied 1",
        "applied as version 1",
        "x-served-by: wasp-cp",
        "ACK v1",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
    let statuses = after("/flaky; done | sort | uniq -c\n");
    assert!(
        statuses.ends_with(" 200") || statuses.ends_with(" 503"),
        "{statuses}"
    );
}
