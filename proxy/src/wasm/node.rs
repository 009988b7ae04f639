//! The proxy's node identity for filters (`node.*`, `xds.node`): the
//! configuration's `node`, with what the command line sets winning.

use wasp_config::NodeConfig;
use wasp_filter_host::NodeInfo;

/// Node settings from the command line (`--node-id`, `--node-cluster`);
/// each one set wins over the configuration file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeOverrides {
    /// `--node-id`.
    pub id: Option<String>,
    /// `--node-cluster`.
    pub cluster: Option<String>,
}

impl NodeOverrides {
    /// The node filters see for a configuration's `node`.
    pub fn node_info(&self, config: &NodeConfig) -> NodeInfo {
        NodeInfo {
            id: self.id.clone().unwrap_or_else(|| config.id.clone()),
            cluster: self
                .cluster
                .clone()
                .unwrap_or_else(|| config.cluster.clone()),
            metadata: config
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            labels: config
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_wins_over_the_file_field_by_field() {
        let config = NodeConfig {
            id: "from-file".into(),
            cluster: "file-cluster".into(),
            metadata: [("ns".to_owned(), "prod".to_owned())].into(),
            labels: [("app".to_owned(), "web".to_owned())].into(),
        };
        let none = NodeOverrides::default().node_info(&config);
        assert_eq!(
            (none.id.as_str(), none.cluster.as_str()),
            ("from-file", "file-cluster")
        );
        let id_only = NodeOverrides {
            id: Some("from-cli".into()),
            cluster: None,
        }
        .node_info(&config);
        assert_eq!(id_only.id, "from-cli");
        assert_eq!(id_only.cluster, "file-cluster");
        assert_eq!(id_only.metadata, vec![("ns".to_owned(), "prod".to_owned())]);
        assert_eq!(id_only.label_value("app"), Some("web"));
    }
}
