//! Which configuration each proxy gets. A version carries a label
//! selector (empty: every proxy); a proxy runs the newest version whose
//! selector its labels match. [`Heads`] keeps the newest version per
//! selector — all a node's choice depends on — and is what the registry
//! publishes to the subscriptions.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::reference;
use crate::store::ConfigRecord;

/// A label selector: every `key=value` must be among a proxy's labels.
pub type Selector = BTreeMap<String, String>;

/// Whether `labels` satisfy `selector`.
pub fn matches(selector: &Selector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// Checks a selector's keys and values (the characters of module names).
pub fn check(selector: &Selector) -> Result<(), String> {
    for (key, value) in selector {
        reference::check_name("selector key", key)
            .and_then(|()| reference::check_name("selector value", value))
            .map_err(|err| format!("selector {key}={value}: {err}"))?;
    }
    Ok(())
}

/// Parses `k=v,k2=v2` (empty: every proxy).
pub fn parse(text: &str) -> Result<Selector, String> {
    let mut selector = Selector::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("selector '{pair}' is not key=value"))?;
        selector.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    check(&selector)?;
    Ok(selector)
}

/// Shows a selector as `k=v,k2=v2` (`*` for every proxy).
pub fn display(selector: &Selector) -> String {
    if selector.is_empty() {
        return "*".into();
    }
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The newest configuration version per selector.
#[derive(Clone, Debug, Default)]
pub struct Heads {
    /// Newest first.
    heads: Vec<Arc<ConfigRecord>>,
}

impl Heads {
    /// The heads of `configs` (any order).
    pub fn from_configs(configs: impl IntoIterator<Item = ConfigRecord>) -> Self {
        let mut heads = Self::default();
        for record in configs {
            heads = heads.with(Arc::new(record));
        }
        heads
    }

    /// These heads after `record` was stored.
    pub fn with(&self, record: Arc<ConfigRecord>) -> Self {
        let mut heads: Vec<_> = self
            .heads
            .iter()
            .filter(|h| h.selector != record.selector || h.version > record.version)
            .cloned()
            .collect();
        if !heads
            .iter()
            .any(|h| h.selector == record.selector && h.version > record.version)
        {
            heads.push(record);
        }
        heads.sort_by_key(|h| std::cmp::Reverse(h.version));
        Self { heads }
    }

    /// The configuration a proxy with `labels` runs.
    pub fn for_node(&self, labels: &BTreeMap<String, String>) -> Option<Arc<ConfigRecord>> {
        self.heads
            .iter()
            .find(|h| matches(&h.selector, labels))
            .cloned()
    }

    /// Every head, newest first.
    pub fn records(&self) -> &[Arc<ConfigRecord>] {
        &self.heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: u64, selector: &str) -> ConfigRecord {
        ConfigRecord {
            version,
            author: String::new(),
            created_at: String::new(),
            message: String::new(),
            document: String::new(),
            resolved: String::new(),
            selector: parse(selector).unwrap(),
        }
    }

    fn labels(text: &str) -> BTreeMap<String, String> {
        parse(text).unwrap()
    }

    #[test]
    fn a_proxy_runs_the_newest_version_whose_selector_it_matches() {
        let heads = Heads::from_configs([
            record(1, ""),
            record(2, "app=web"),
            record(3, "app=db"),
            record(4, "app=web,zone=a"),
        ]);
        let version = |l: &str| heads.for_node(&labels(l)).map(|r| r.version);
        assert_eq!(version("app=web"), Some(2));
        assert_eq!(version("app=web,zone=a"), Some(4));
        assert_eq!(version("app=db"), Some(3));
        assert_eq!(version("app=cache"), Some(1));
        let heads = heads.with(Arc::new(record(5, "")));
        assert_eq!(heads.for_node(&labels("app=web")).unwrap().version, 5);
        assert_eq!(heads.records().len(), 4, "version 1 is no head any more");
    }

    #[test]
    fn without_a_matching_version_a_proxy_gets_nothing() {
        let heads = Heads::from_configs([record(1, "app=web")]);
        assert!(heads.for_node(&labels("app=db")).is_none());
        assert!(heads.for_node(&labels("")).is_none());
    }

    #[test]
    fn bad_selectors_are_refused_with_the_pair() {
        assert_eq!(parse("app").unwrap_err(), "selector 'app' is not key=value");
        assert!(parse("a/b=c").unwrap_err().starts_with("selector a/b=c:"));
        assert_eq!(display(&parse("b=2, a=1").unwrap()), "a=1,b=2");
        assert_eq!(display(&Selector::new()), "*");
    }
}
