//! Load-time checks of a module: every import is one the host provides, and
//! the exports the ABI needs are there.

use wasmtime::{ExternType, Module};

use crate::abi::HostImports;
use crate::error::HostError;

/// Exports naming the ABI version; one of them must be present.
const ABI_MARKERS: [&str; 3] = [
    wasp_abi::ABI_VERSION_EXPORT,
    wasp_abi::ABI_VERSION_EXPORT_0_2_0,
    "proxy_abi_version_0_1_0",
];

/// Checks imports and required exports.
pub(crate) fn validate(module: &Module, imports: &HostImports) -> Result<(), HostError> {
    for import in module.imports() {
        if !imports.provides(import.module(), import.name()) {
            return Err(HostError::UnknownImport {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
            });
        }
    }
    let export = |name: &str| module.get_export(name);
    match export("memory") {
        Some(ExternType::Memory(_)) => {}
        Some(_) => {
            return Err(HostError::BadExport {
                name: "memory".into(),
                reason: "not a memory".into(),
            });
        }
        None => return Err(HostError::MissingExport("memory".into())),
    }
    if !ABI_MARKERS.iter().any(|m| export(m).is_some()) {
        return Err(HostError::MissingExport(
            wasp_abi::ABI_VERSION_EXPORT.into(),
        ));
    }
    if export("proxy_on_memory_allocate").is_none() && export("malloc").is_none() {
        return Err(HostError::MissingExport("proxy_on_memory_allocate".into()));
    }
    if export("proxy_on_context_create").is_none() {
        return Err(HostError::MissingExport("proxy_on_context_create".into()));
    }
    Ok(())
}
