//! Trace propagation: continue a W3C (`traceparent`, `tracestate`) or B3
//! (multi `x-b3-*` or single `b3`) trace — same trace id, a new span id
//! whose parent is the caller's span, the sampling decision kept — or start
//! one when the request carries none.
//!
//! Reading prefers `traceparent`, then `b3`, then `x-b3-traceid`; headers
//! that do not parse are ignored (a new trace is started), as tracers do.
//! Header values are written into stack buffers ([`Text`]).

use crate::text::Text;

/// A sampling decision from the incoming headers, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// Sampled (`1`; B3 debug `d` / `x-b3-flags: 1` counts as sampled).
    Yes,
    /// Not sampled (`0`).
    No,
    /// No decision: this proxy decides.
    Defer,
}

/// The caller's trace context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    /// The trace id (a 64-bit B3 id is kept in the low bits).
    pub trace_id: u128,
    /// The caller's span id.
    pub span_id: u64,
    /// W3C trace flags (bit 0: sampled), when read from `traceparent`.
    pub flags: Option<u8>,
    /// The sampling decision.
    pub sampling: Sampling,
    /// Whether the trace id came as 16 hex digits (B3 64-bit ids).
    pub short_id: bool,
}

/// What was found in the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A trace to continue.
    Continue(Parent),
    /// No trace (or only a B3 sampling decision): start one.
    Start(Sampling),
}

fn hex_u64(text: &str) -> Option<u64> {
    (text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
        .filter(|v| *v != 0)
}

/// A 32- or 16-digit lowercase hex trace id, not zero; whether it was short.
fn hex_trace_id(text: &str) -> Option<(u128, bool)> {
    if !matches!(text.len(), 16 | 32)
        || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let id = u128::from_str_radix(text, 16).ok().filter(|v| *v != 0)?;
    Some((id, text.len() == 16))
}

/// Parses a W3C `traceparent` (version 00 exactly; later versions by their
/// first four fields, as the specification asks).
pub fn parse_traceparent(value: &str) -> Option<Parent> {
    let value = value.trim();
    let mut parts = value.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    let rest = parts.next();
    if version.len() != 2 || version == "ff" || (version == "00" && rest.is_some()) {
        return None;
    }
    u8::from_str_radix(version, 16).ok()?;
    if trace.len() != 32 || flags.len() != 2 {
        return None;
    }
    let (trace_id, _) = hex_trace_id(trace)?;
    let span_id = hex_u64(span)?;
    if !flags
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(Parent {
        trace_id,
        span_id,
        flags: Some(flags),
        sampling: if flags & 1 == 1 {
            Sampling::Yes
        } else {
            Sampling::No
        },
        short_id: false,
    })
}

fn b3_sampling(value: &str) -> Option<Sampling> {
    match value {
        "1" | "d" | "true" => Some(Sampling::Yes),
        "0" | "false" => Some(Sampling::No),
        _ => None,
    }
}

/// Parses a B3 single header: `{trace}-{span}[-{sampled}[-{parent}]]` or a
/// bare sampling decision (`0`, `1`, `d`).
pub fn parse_b3_single(value: &str) -> Option<Incoming> {
    let value = value.trim();
    if let Some(sampling) = b3_sampling(value).filter(|_| value.len() == 1) {
        return Some(Incoming::Start(sampling));
    }
    let mut split = value.split('-');
    let mut parts = [""; 4];
    let mut count = 0;
    for part in split.by_ref().take(4) {
        parts[count] = part;
        count += 1;
    }
    if count < 2 || split.next().is_some() {
        return None;
    }
    let parts = &parts[..count];
    let (trace_id, short_id) = hex_trace_id(parts[0])?;
    let span_id = hex_u64(parts[1])?;
    let sampling = match parts.get(2) {
        Some(s) => b3_sampling(s).filter(|_| s.len() == 1)?,
        None => Sampling::Defer,
    };
    if let Some(parent) = parts.get(3) {
        hex_u64(parent)?;
    }
    Some(Incoming::Continue(Parent {
        trace_id,
        span_id,
        flags: None,
        sampling,
        short_id,
    }))
}

/// Reads the incoming trace from request headers (`get` answers a header).
pub fn extract<'h>(get: impl Fn(&str) -> Option<&'h str>) -> Incoming {
    if let Some(parent) = get("traceparent").and_then(parse_traceparent) {
        return Incoming::Continue(parent);
    }
    if let Some(found) = get("b3").and_then(parse_b3_single) {
        return found;
    }
    let sampling = match get("x-b3-flags") {
        Some("1") => Sampling::Yes,
        _ => get("x-b3-sampled")
            .and_then(b3_sampling)
            .unwrap_or(Sampling::Defer),
    };
    let trace = get("x-b3-traceid").and_then(hex_trace_id);
    let span = get("x-b3-spanid").and_then(hex_u64);
    match (trace, span) {
        (Some((trace_id, short_id)), Some(span_id)) => Incoming::Continue(Parent {
            trace_id,
            span_id,
            flags: None,
            sampling,
            short_id,
        }),
        _ => Incoming::Start(sampling),
    }
}

/// The span this proxy adds to the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// The trace id.
    pub trace_id: u128,
    /// This span's id (new).
    pub span_id: u64,
    /// The caller's span, when the trace was continued.
    pub parent_span_id: Option<u64>,
    /// Sampled or not.
    pub sampled: bool,
    /// W3C trace flags to write.
    pub flags: u8,
    /// Whether B3 headers write the trace id in 16 digits.
    pub short_id: bool,
}

impl Span {
    /// The next span: continuing `incoming` or starting a trace. `rng`
    /// makes ids; `sample` decides when the incoming headers do not.
    pub fn next(
        incoming: Incoming,
        rng: &mut fastrand::Rng,
        sample: impl FnOnce() -> bool,
    ) -> Span {
        let span_id = loop {
            let id = rng.u64(..);
            if id != 0 {
                break id;
            }
        };
        let decide = |sampling: Sampling| match sampling {
            Sampling::Yes => true,
            Sampling::No => false,
            Sampling::Defer => sample(),
        };
        match incoming {
            Incoming::Continue(parent) => {
                let sampled = decide(parent.sampling);
                let flags = match parent.flags {
                    Some(flags) => flags,
                    None => u8::from(sampled),
                };
                Span {
                    trace_id: parent.trace_id,
                    span_id,
                    parent_span_id: Some(parent.span_id),
                    sampled,
                    flags,
                    short_id: parent.short_id,
                }
            }
            Incoming::Start(sampling) => {
                let trace_id = loop {
                    let id = rng.u128(..);
                    if id != 0 {
                        break id;
                    }
                };
                let sampled = decide(sampling);
                Span {
                    trace_id,
                    span_id,
                    parent_span_id: None,
                    sampled,
                    flags: u8::from(sampled),
                    short_id: false,
                }
            }
        }
    }

    /// The span's ids in hex, each written once, from which every header
    /// value and property is put together.
    pub fn texts(&self) -> SpanTexts {
        let mut trace_id = Text::default();
        trace_id.hex(self.trace_id, 32);
        let mut span_id = Text::default();
        span_id.hex(u128::from(self.span_id), 16);
        let parent_span_id = self.parent_span_id.map(|parent| {
            let mut text = Text::default();
            text.hex(u128::from(parent), 16);
            text
        });
        SpanTexts {
            trace_id,
            span_id,
            parent_span_id,
            sampled: self.sampled,
            flags: self.flags,
            short_id: self.short_id,
        }
    }
}

/// A [`Span`]'s ids written in hex ([`Span::texts`]).
#[derive(Clone, Copy, Debug)]
pub struct SpanTexts {
    /// The trace id, 32 digits.
    pub trace_id: Text<32>,
    /// This span's id, 16 digits.
    pub span_id: Text<16>,
    /// The caller's span id, 16 digits.
    pub parent_span_id: Option<Text<16>>,
    sampled: bool,
    flags: u8,
    short_id: bool,
}

impl SpanTexts {
    /// The trace id as B3 writes it (16 digits when it came that way).
    pub fn b3_trace_id(&self) -> Text<32> {
        if !self.short_id {
            return self.trace_id;
        }
        let mut text = Text::default();
        text.push(&self.trace_id[16..]);
        text
    }

    /// The `traceparent` value.
    pub fn traceparent(&self) -> Text<55> {
        let mut text = Text::default();
        text.push("00-")
            .push_text(&self.trace_id)
            .push("-")
            .push_text(&self.span_id)
            .push("-")
            .hex(u128::from(self.flags), 2);
        text
    }

    /// The `b3` single header value.
    pub fn b3_single(&self) -> Text<68> {
        let mut text = Text::default();
        text.push_text(&self.b3_trace_id())
            .push("-")
            .push_text(&self.span_id)
            .push(if self.sampled { "-1" } else { "-0" });
        if let Some(parent) = &self.parent_span_id {
            text.push("-").push_text(parent);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn traceparent_parses_strictly() {
        let parent = parse_traceparent(&format!("00-{TRACE}-{SPAN}-01")).unwrap();
        assert_eq!(parent.trace_id, u128::from_str_radix(TRACE, 16).unwrap());
        assert_eq!(parent.sampling, Sampling::Yes);
        assert_eq!(
            parse_traceparent(&format!("00-{TRACE}-{SPAN}-00"))
                .unwrap()
                .sampling,
            Sampling::No
        );
        for bad in [
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("00-{TRACE}-{SPAN}"),
            "garbage".to_owned(),
        ] {
            assert_eq!(parse_traceparent(&bad), None, "{bad}");
        }
        // A later version: its first four fields count.
        assert!(parse_traceparent(&format!("01-{TRACE}-{SPAN}-01-more")).is_some());
    }

    #[test]
    fn b3_single_parses_ids_and_bare_decisions() {
        assert_eq!(parse_b3_single("0"), Some(Incoming::Start(Sampling::No)));
        assert_eq!(parse_b3_single("d"), Some(Incoming::Start(Sampling::Yes)));
        let Some(Incoming::Continue(p)) = parse_b3_single(&format!("{TRACE}-{SPAN}-1-{SPAN}"))
        else {
            panic!()
        };
        assert_eq!((p.sampling, p.short_id), (Sampling::Yes, false));
        let Some(Incoming::Continue(p)) = parse_b3_single(&format!("a3ce929d0e0e4736-{SPAN}"))
        else {
            panic!()
        };
        assert_eq!((p.sampling, p.short_id), (Sampling::Defer, true));
        assert_eq!(parse_b3_single(&format!("{TRACE}-{SPAN}-x")), None);
        assert_eq!(parse_b3_single("x"), None);
    }

    #[test]
    fn a_continued_span_keeps_trace_and_flags_and_gets_a_new_id() {
        let incoming =
            Incoming::Continue(parse_traceparent(&format!("00-{TRACE}-{SPAN}-03")).unwrap());
        let span = Span::next(incoming, &mut fastrand::Rng::with_seed(1), || false);
        let texts = span.texts();
        assert_eq!(texts.trace_id, TRACE);
        assert_ne!(texts.span_id, SPAN);
        assert_eq!(
            span.parent_span_id,
            Some(u64::from_str_radix(SPAN, 16).unwrap())
        );
        assert!(texts.traceparent().ends_with("-03"));
        assert!(texts.b3_single().ends_with(&format!("-1-{SPAN}")));
    }
}
