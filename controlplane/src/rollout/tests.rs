//! The registry's rollouts end to end in process: started by an apply,
//! fed by reports, ended by ticks as new versions, kept across reopening
//! the store, superseded by a newer version.

use std::sync::Arc;

use wasp_controlplane_api as api;

use super::{AUTHOR, RolloutState};
use crate::registry::{Applied, Registry};
use crate::store::RedbStore;
use crate::targeting::Selector;

fn doc(period: &str) -> String {
    format!(
        "filter_chains: [{{name: edge, plugins: [{{name: auth, module: 'auth@v1', \
         canary: {{module: 'auth@v2', percent: 10, rollout: {{healthy_period: {period}, \
         max_error_percent: 5, min_requests: 10}}}}}}]}}]\n\
         listeners: [{{name: l, address: '127.0.0.1:8080', filter_chain: edge, routes: []}}]\n"
    )
}

fn open(dir: &tempfile::TempDir) -> Registry {
    Registry::new(Arc::new(RedbStore::open(dir.path()).unwrap())).unwrap()
}

fn setup(dir: &tempfile::TempDir, period: &str) -> (Registry, u64) {
    let registry = open(dir);
    registry.push_module("auth", "v1", b"one", &[]).unwrap();
    registry.push_module("auth", "v2", b"two", &[]).unwrap();
    let Applied::Stored(record) = registry
        .apply(&doc(period), Selector::new(), "ops", "canary", false)
        .unwrap()
    else {
        panic!("stored")
    };
    (registry, record.version)
}

fn report(version: u64, requests: u64, errors: u64) -> api::Report {
    let counts = |requests, errors| api::VersionCounts {
        sha256: String::new(),
        requests,
        errors,
        traps: errors,
    };
    api::Report {
        version,
        canaries: vec![api::CanaryCounts {
            chain: "edge".into(),
            plugin: "auth".into(),
            stable: Some(counts(100, 0)),
            canary: Some(counts(requests, errors)),
        }],
    }
}

#[test]
fn an_apply_with_a_canary_starts_a_rollout_pinned_to_both_modules() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, version) = setup(&dir, "1h");
    let rollouts = registry.rollouts();
    assert_eq!(rollouts.len(), 1);
    let r = &rollouts[0];
    assert_eq!(r.id, format!("{version}:edge/auth"));
    assert_eq!(r.state, RolloutState::Running);
    assert_eq!(r.stable_sha256, crate::reference::sha256_hex(b"one"));
    assert_eq!(r.canary_sha256, crate::reference::sha256_hex(b"two"));
    let resolved = registry.config(None).unwrap().resolved;
    assert!(
        resolved.contains(&format!("sha256:{}", r.canary_sha256)),
        "{resolved}"
    );
    let err = registry.remove_module("auth", "v2").unwrap_err();
    assert!(err.to_string().contains("plugins[0].canary"), "{err}");
}

#[test]
fn a_failing_canary_is_rolled_back_as_a_new_version_by_the_rollout_author() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, version) = setup(&dir, "1h");
    assert_eq!(
        registry.record_report(&report(version + 5, 50, 50)).len(),
        0,
        "another version's report does not count"
    );
    assert_eq!(registry.record_report(&report(version, 20, 3)).len(), 1);
    registry.tick_rollouts(crate::time::now_ms()).unwrap();
    let r = &registry.rollouts()[0];
    assert_eq!(r.state, RolloutState::RolledBack, "{r:?}");
    assert_eq!(r.result_version, version + 1);
    let current = registry.config(None).unwrap();
    assert_eq!(current.version, version + 1);
    assert_eq!(current.author, AUTHOR);
    assert!(
        current.message.starts_with(&format!(
            "rollout {version}:edge/auth: canary auth@v2 rolled back: error rate 15.0%"
        )),
        "{}",
        current.message
    );
    let config = wasp_config::parse(&current.document).unwrap();
    let plugin = &config.filter_chains[0].plugins[0];
    assert_eq!(plugin.module, "auth@v1");
    assert!(plugin.canary.is_none());
}

#[test]
fn a_healthy_canary_is_promoted_after_its_period() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, version) = setup(&dir, "1s");
    registry.record_report(&report(version, 20, 0));
    registry.tick_rollouts(crate::time::now_ms()).unwrap();
    assert_eq!(registry.rollouts()[0].state, RolloutState::Running);
    registry
        .tick_rollouts(crate::time::now_ms() + 1_000)
        .unwrap();
    let r = &registry.rollouts()[0];
    assert_eq!(r.state, RolloutState::Promoted, "{r:?}");
    let current = registry.config(None).unwrap();
    let plugin = &wasp_config::parse(&current.resolved).unwrap().filter_chains[0].plugins[0];
    assert_eq!(plugin.module, format!("sha256:{}", r.canary_sha256));
    assert!(plugin.canary.is_none());
}

#[test]
fn rollouts_and_their_counts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let version = {
        let (registry, version) = setup(&dir, "1h");
        registry.record_report(&report(version, 7, 0));
        registry.tick_rollouts(crate::time::now_ms()).unwrap();
        version
    };
    let registry = open(&dir);
    let r = &registry.rollouts()[0];
    assert_eq!((r.state, r.canary.requests), (RolloutState::Running, 7));
    registry.record_report(&report(version, 10, 10));
    registry.tick_rollouts(crate::time::now_ms()).unwrap();
    assert_eq!(registry.rollouts()[0].state, RolloutState::RolledBack);
}

#[test]
fn a_newer_version_for_the_same_proxies_supersedes_a_running_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _) = setup(&dir, "1h");
    let plain = doc("1h").replace(
        ", canary: {module: 'auth@v2', percent: 10, rollout: {healthy_period: 1h, max_error_percent: 5, min_requests: 10}}",
        "",
    );
    registry
        .apply(&plain, Selector::new(), "ops", "", false)
        .unwrap();
    let r = &registry.rollouts()[0];
    assert_eq!(r.state, RolloutState::Superseded);
    assert!(r.reason.contains("replaced version 1"), "{}", r.reason);
}
