//! The filter's configuration (all fields optional; `{}` or no
//! configuration at all gives Istio's defaults for a sidecar's inbound
//! side). See `README.md`.

use serde::Deserialize;

/// Which side of the call this proxy reports as (Istio's `reporter` label).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reporter {
    /// The server's sidecar (inbound): the peer is the source.
    #[default]
    Destination,
    /// The client's sidecar (outbound): the peer is the destination.
    Source,
}

impl Reporter {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Destination => "destination",
            Self::Source => "source",
        }
    }
}

/// Which trace header formats are written.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Tracing {
    /// Propagate traces at all. Default true.
    pub enabled: bool,
    /// Percentage of new traces (started here) marked sampled; continued
    /// traces keep their flag. Default 1.0, Istio's default.
    pub sampling: f64,
    /// Write `traceparent` (and keep `tracestate`). Default true.
    pub w3c: bool,
    /// Write B3 multi headers (`x-b3-traceid`, `x-b3-spanid`,
    /// `x-b3-parentspanid`, `x-b3-sampled`). Default true.
    pub b3_multi: bool,
    /// When to write the B3 single header (`b3`): `true` always, `false`
    /// never, `when_received` (the default) when the request carried one,
    /// so a caller speaking B3 single gets it back while others, like
    /// Envoy's Zipkin tracer, get the multi headers only.
    pub b3_single: B3Single,
}

/// When the B3 single header is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum B3Single {
    /// On every request (`true`).
    Always,
    /// Never (`false`).
    Never,
    /// When the request carried a `b3` header (`when_received`).
    #[default]
    WhenReceived,
}

impl<'de> Deserialize<'de> for B3Single {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Flag(bool),
            Word(String),
        }
        match Form::deserialize(d)? {
            Form::Flag(true) => Ok(Self::Always),
            Form::Flag(false) => Ok(Self::Never),
            Form::Word(w) if w == "when_received" => Ok(Self::WhenReceived),
            Form::Word(w) => Err(serde::de::Error::custom(format!(
                "b3_single: `{w}` is not true, false or \"when_received\""
            ))),
        }
    }
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing {
            enabled: true,
            sampling: 1.0,
            w3c: true,
            b3_multi: true,
            b3_single: B3Single::WhenReceived,
        }
    }
}

/// The plugin configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `destination` (default) or `source`.
    pub reporter: Reporter,
    /// Exchange workload metadata with the peer through the
    /// `x-envoy-peer-metadata` headers. Default true.
    pub metadata_exchange: Exchange,
    /// Trace propagation.
    pub tracing: Tracing,
}

/// Whether metadata exchange is on (a newtype so it defaults to true).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Exchange(pub bool);

impl Default for Exchange {
    fn default() -> Self {
        Exchange(true)
    }
}

impl Config {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        let sampling = self.tracing.sampling;
        if !(0.0..=100.0).contains(&sampling) || sampling.is_nan() {
            return Err(format!(
                "tracing.sampling: {sampling} is not a percentage between 0 and 100"
            ));
        }
        Ok(())
    }
}
