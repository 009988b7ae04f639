//! Where filters' callouts find their clusters: the clusters of a
//! configuration being built, while it is built, else the running
//! snapshot's. A plugin's root context runs before its configuration serves
//! (`proxy_on_configure`, and ticks that fire while other plugins of the
//! same configuration still compile); its callouts must reach the clusters
//! that configuration declares, as in Envoy, where clusters are ready before
//! the filters that use them.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};

use super::callouts::ClusterLookup;
use crate::upstream::Cluster;

/// The clusters callouts see (see the module documentation).
#[derive(Default)]
pub struct ClusterDirectory {
    running: OnceLock<Weak<dyn ClusterLookup>>,
    staged: RwLock<Option<HashMap<String, Arc<Cluster>>>>,
}

impl ClusterDirectory {
    /// Binds the running configuration's lookup (once, at start).
    pub fn bind(&self, running: Weak<dyn ClusterLookup>) {
        let _ = self.running.set(running);
    }

    /// Makes `clusters` (of a configuration being built) the ones callouts
    /// see until [`ClusterDirectory::unstage`].
    pub fn stage(&self, clusters: &HashMap<String, Arc<Cluster>>) {
        *self.staged.write().unwrap_or_else(PoisonError::into_inner) = Some(clusters.clone());
    }

    /// Back to the running configuration's clusters (after the built
    /// configuration was installed or rejected).
    pub fn unstage(&self) {
        *self.staged.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Unstages when dropped: for builds that may end early.
    pub fn unstage_on_drop(&self) -> Unstage<'_> {
        Unstage(self)
    }
}

/// Unstages its directory when dropped.
pub struct Unstage<'a>(&'a ClusterDirectory);

impl Drop for Unstage<'_> {
    fn drop(&mut self) {
        self.0.unstage();
    }
}

impl ClusterLookup for ClusterDirectory {
    fn cluster(&self, name: &str) -> Option<Arc<Cluster>> {
        let staged = self
            .staged
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|clusters| clusters.get(name).cloned());
        match staged {
            Some(found) => found,
            None => self
                .running
                .get()
                .and_then(Weak::upgrade)
                .and_then(|running| running.cluster(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Metrics;

    async fn cluster(name: &str, metrics: &Metrics) -> Arc<Cluster> {
        let yaml = format!("{{name: {name}, endpoints: [{{address: '127.0.0.1:9'}}]}}");
        Cluster::new(serde_yaml_ng::from_str(&yaml).unwrap(), metrics, None).await
    }

    struct Running(HashMap<String, Arc<Cluster>>);

    impl ClusterLookup for Running {
        fn cluster(&self, name: &str) -> Option<Arc<Cluster>> {
            self.0.get(name).cloned()
        }
    }

    #[tokio::test]
    async fn a_building_configurations_clusters_win_until_unstaged() {
        let metrics = Metrics::new();
        let directory = ClusterDirectory::default();
        let old = cluster("app", &metrics).await;
        let running: Arc<dyn ClusterLookup> =
            Arc::new(Running(HashMap::from([("app".into(), Arc::clone(&old))])));
        directory.bind(Arc::downgrade(&running));
        assert!(Arc::ptr_eq(&directory.cluster("app").unwrap(), &old));
        assert!(directory.cluster("idp").is_none());

        let new = cluster("app", &metrics).await;
        let idp = cluster("idp", &metrics).await;
        let staged = HashMap::from([("app".into(), Arc::clone(&new)), ("idp".into(), idp)]);
        {
            let _unstage = directory.unstage_on_drop();
            directory.stage(&staged);
            assert!(Arc::ptr_eq(&directory.cluster("app").unwrap(), &new));
            assert!(directory.cluster("idp").is_some());
        }
        assert!(Arc::ptr_eq(&directory.cluster("app").unwrap(), &old));
        assert!(
            directory.cluster("idp").is_none(),
            "a rejected build's cluster"
        );
    }
}
