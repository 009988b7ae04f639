//! Per-proxy addresses over a pushed configuration: one configuration
//! serves many proxies, but proxies sharing a machine (or a test running
//! twenty of them) need their own admin and listener addresses.
//! `--admin-address ADDR` and `--listener-address NAME=ADDR` replace those
//! of every configuration the control plane pushes (and of the cached one).

use std::collections::BTreeMap;

use wasp_config::{AdminConfig, Config};

/// Addresses this proxy uses whatever the configuration says.
#[derive(Clone, Debug, Default)]
pub struct AddressOverrides {
    /// The admin server's address.
    pub admin: Option<String>,
    /// Listener name → address.
    pub listeners: BTreeMap<String, String>,
}

impl AddressOverrides {
    /// Applies the overrides to `config`; a listener named here but absent
    /// from the configuration is left alone (the configuration may not
    /// have it).
    pub fn apply(&self, config: &mut Config) {
        if let Some(admin) = &self.admin {
            match &mut config.admin {
                Some(current) => current.address.clone_from(admin),
                None => {
                    config.admin = Some(AdminConfig {
                        address: admin.clone(),
                    });
                }
            }
        }
        for listener in &mut config.listeners {
            if let Some(address) = self.listeners.get(&listener.name) {
                listener.address.clone_from(address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_and_named_listener_addresses_are_replaced() {
        let mut config = wasp_config::parse(
            "admin: {address: '127.0.0.1:9901'}\n\
             listeners: [{name: a, address: '127.0.0.1:8080', routes: []}, \
             {name: b, address: '127.0.0.1:8081', routes: []}]",
        )
        .unwrap();
        let overrides = AddressOverrides {
            admin: Some("127.0.0.1:19901".into()),
            listeners: [("b".to_owned(), "127.0.0.1:18081".to_owned())].into(),
        };
        overrides.apply(&mut config);
        assert_eq!(config.admin.unwrap().address, "127.0.0.1:19901");
        assert_eq!(config.listeners[0].address, "127.0.0.1:8080");
        assert_eq!(config.listeners[1].address, "127.0.0.1:18081");
    }
}
