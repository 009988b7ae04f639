//! Logging through the host (`proxy_log`): the level-named macros, error
//! reporting for failed host calls, and the panic hook that logs a panic's
//! message and location before the module traps.

use crate::abi::hostcalls;
use std::fmt;
use std::sync::Once;
use wasp_abi::LogLevel;

/// Writes a formatted message to the host log at `level`. Used by the macros.
/// Messages below the host's level (`proxy_get_log_level`) are not formatted.
pub fn log(level: LogLevel, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let message = match args.as_str() {
        Some(text) => std::borrow::Cow::Borrowed(text),
        None => std::borrow::Cow::Owned(args.to_string()),
    };
    // Nothing sensible can be done when logging itself fails.
    let _ = hostcalls::log(level, &message);
}

/// True when the host would keep a message at `level`.
pub fn enabled(level: LogLevel) -> bool {
    hostcalls::log_level().map_or(true, |host| level as u32 >= host as u32)
}

/// Logs a failed host call at warn level (used where the SDK's API returns
/// plain values instead of a `Result`).
pub(crate) fn report(error: &crate::Error) {
    log(LogLevel::Warn, format_args!("{error}"));
}

/// Installs the panic hook that reports panics through `proxy_log` at
/// critical level. Idempotent; the SDK calls it when the first context is
/// created. On native targets the previous hook still runs afterwards.
pub fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // On wasm the default hook would only add std's printing machinery
        // to every module; the message goes to the host log instead.
        #[cfg(not(target_arch = "wasm32"))]
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(non-string panic payload)");
            match info.location() {
                Some(at) => log(
                    LogLevel::Critical,
                    format_args!("panicked at {}:{}: {message}", at.file(), at.line()),
                ),
                None => log(LogLevel::Critical, format_args!("panicked: {message}")),
            }
            #[cfg(not(target_arch = "wasm32"))]
            previous(info);
        }));
    });
}

/// Logs at trace level: `trace!("value {}", v)`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log::log($crate::LogLevel::Trace, format_args!($($arg)+)) };
}

/// Logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::log($crate::LogLevel::Debug, format_args!($($arg)+)) };
}

/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::log($crate::LogLevel::Info, format_args!($($arg)+)) };
}

/// Logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::log($crate::LogLevel::Warn, format_args!($($arg)+)) };
}

/// Logs at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::log($crate::LogLevel::Error, format_args!($($arg)+)) };
}

/// Logs at critical level.
#[macro_export]
macro_rules! critical {
    ($($arg:tt)+) => { $crate::log::log($crate::LogLevel::Critical, format_args!($($arg)+)) };
}
