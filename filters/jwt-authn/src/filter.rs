//! The per-request filter: finds the token, verifies it with the provider
//! its `iss` names, and then either answers 401 (logging and counting the
//! reason, never the token) or publishes the identity (properties
//! `request.auth.*`, configured headers) and takes the token out of the
//! request unless `forward_original_token`.

use crate::claims;
use crate::extract::{self, Found, Location};
use crate::jwk::KeySet;
use crate::reject::{self, Reason};
use crate::token;
use crate::verified::Verified;
use crate::{Keys, Plugin, now_ms, verify};
use std::rc::Rc;
use std::time::Duration;
use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::{HeaderList, HeaderSnapshot, PropertyPath, info};

/// Longest reason detail written to the log.
const MAX_DETAIL: usize = 200;

/// The filter of one request.
pub struct JwtAuthn {
    plugin: Rc<Plugin>,
}

impl JwtAuthn {
    /// The filter of a new request.
    pub fn new(plugin: Rc<Plugin>) -> JwtAuthn {
        JwtAuthn { plugin }
    }

    /// The current key set of provider `index`.
    fn keys(&self, index: usize) -> Result<Rc<KeySet>, (Reason, String)> {
        match &self.plugin.keys[index] {
            Keys::Inline(keys) => Ok(keys.clone()),
            Keys::Fetched(fetched) => fetched.borrow_mut().keys().ok_or_else(|| {
                let issuer = &self.plugin.config.providers[index].issuer;
                (
                    Reason::JwksUnavailable,
                    format!("no JWKS for `{issuer}` yet"),
                )
            }),
        }
    }

    /// The cached facts of a token, if a provider that reads tokens where
    /// it was found verified it with the keys it has now.
    fn cached(&self, found: &Found<'_>) -> Option<Rc<Verified>> {
        found.providers.iter().find_map(|&index| {
            let cache = &self.plugin.tokens[index];
            if cache.borrow().is_empty() {
                return None;
            }
            let keys = self.keys(index).ok()?;
            cache.borrow_mut().get(found.token, &keys)
        })
    }

    /// Parses and verifies a token (no cache), and caches what it establishes.
    fn verify(&self, found: &Found<'_>) -> Result<Rc<Verified>, (Reason, String)> {
        let config = &self.plugin.config;
        let token = token::parse(found.token)?;
        let issuer = claims::issuer(&token.claims)?;
        let Some(index) = config.providers.iter().position(|p| p.issuer == issuer) else {
            return Err((
                Reason::WrongIssuer,
                format!("iss `{issuer}` has no provider"),
            ));
        };
        if !found.providers.contains(&index) {
            let why = format!("iss `{issuer}` is not read from {:?}", found.location);
            return Err((Reason::WrongIssuer, why));
        }
        let keys = self.keys(index)?;
        if let Err((reason, why)) = verify::verify(&token, &keys) {
            if let (Reason::UnknownKid, Keys::Fetched(fetched)) = (reason, &self.plugin.keys[index])
            {
                fetched.borrow().want_refresh(now_ms());
            }
            return Err((reason, why));
        }
        let verified = Rc::new(Verified::new(token, index, &config.providers[index], keys));
        self.plugin.tokens[index]
            .borrow_mut()
            .insert(found.token, &verified);
        Ok(verified)
    }

    /// Checks one token found in the request: from the cache when it
    /// verified before with the same keys, else parsed and verified; then
    /// its dates and audience, on every request.
    fn check(&self, found: &Found<'_>) -> Result<Rc<Verified>, (Reason, String)> {
        let config = &self.plugin.config;
        let limit = found
            .providers
            .iter()
            .map(|p| config.providers[*p].max_token())
            .max()
            .unwrap_or_default();
        if found.token.len() > limit {
            let why = format!("{} bytes, more than {limit}", found.token.len());
            return Err((Reason::TooLarge, why));
        }
        let verified = match self.cached(found) {
            Some(verified) => verified,
            None => self.verify(found)?,
        };
        let now = Duration::from_millis(now_ms());
        verified.check(&config.providers[verified.provider], now)?;
        Ok(verified)
    }

    /// Answers 401 for `reason`, logging and counting it.
    fn refuse(&self, ctx: &HttpCtx<Self>, reason: Reason, detail: &str) -> Action {
        self.plugin.metrics.reject(reason);
        let mut detail = detail.to_owned();
        if detail.len() > MAX_DETAIL {
            let mut cut = MAX_DETAIL;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
            detail.push('…');
        }
        info!("jwt-authn: rejected ({}): {detail}", reason.name());
        let realm = self.plugin.config.realm.clone().unwrap_or_else(|| {
            let headers = ctx.request_headers();
            let scheme = headers.get(":scheme").unwrap_or_else(|| "http".into());
            let host = headers.get(":authority").unwrap_or_default();
            let path = headers.get(":path").unwrap_or_default();
            let path = path.split(['?', '#']).next().unwrap_or_default();
            format!("{scheme}://{host}{path}")
        });
        let headers: HeaderList = vec![
            (
                "www-authenticate".into(),
                reject::www_authenticate(&realm, reason),
            ),
            ("content-type".into(), "text/plain".into()),
        ];
        Action::Respond(401, headers, reject::body(reason).into())
    }

    /// Publishes the identity and rewrites the request after success.
    fn admit(&self, ctx: &HttpCtx<Self>, verified: &Verified, found: &[Found<'_>]) {
        let provider = &self.plugin.config.providers[verified.provider];
        if let Some(principal) = &verified.principal {
            publish(ctx, property::PRINCIPAL, principal.as_bytes());
        }
        publish(ctx, property::AUDIENCES, &verified.audiences_json);
        if let Some(azp) = &verified.presenter {
            publish(ctx, property::PRESENTER, azp.as_bytes());
        }
        publish(ctx, property::CLAIMS, &verified.claims_json);
        let headers = ctx.request_headers();
        if let Some(name) = &provider.output_payload_to_header {
            headers.set(name, &verified.payload_b64);
        }
        for (out, value) in provider
            .output_claim_to_headers
            .iter()
            .zip(&verified.claim_headers)
        {
            if let Some(value) = value {
                headers.set(&out.header, value);
            }
        }
        if !provider.forward_original_token {
            for f in found {
                remove_token(ctx, f);
            }
        }
    }

    /// Removes headers this filter sets, so a client cannot forge them
    /// (those present in `present`, the request headers as read).
    fn strip_output_headers(&self, ctx: &HttpCtx<Self>, present: &HeaderSnapshot) {
        let headers = ctx.request_headers();
        let strip = |name: &str| {
            if present.contains(name) {
                headers.remove(name);
            }
        };
        for provider in &self.plugin.config.providers {
            if let Some(name) = &provider.output_payload_to_header {
                strip(name);
            }
            for out in &provider.output_claim_to_headers {
                strip(&out.header);
            }
        }
    }
}

/// The properties a verified token publishes for later filters: one
/// dotted segment each, the form Envoy stores filter state under and
/// `authz` (and wasp's host) read back.
mod property {
    pub const PRINCIPAL: &str = "request.auth.principal";
    pub const AUDIENCES: &str = "request.auth.audiences";
    pub const PRESENTER: &str = "request.auth.presenter";
    pub const CLAIMS: &str = "request.auth.claims";
}

fn publish(ctx: &HttpCtx<JwtAuthn>, name: &str, value: &[u8]) {
    if let Err(e) = ctx.set_property_at(&PropertyPath::segment(name), value) {
        wasp_filter_sdk::warn!("jwt-authn: setting {name}: {e}");
    }
}

fn remove_token(ctx: &HttpCtx<JwtAuthn>, found: &Found<'_>) {
    let headers = ctx.request_headers();
    match &found.location {
        Location::Header(name) => headers.remove(name),
        Location::Param(name) => {
            if let Some(path) = headers.get(":path") {
                headers.set(":path", &extract::path_without_param(&path, name));
            }
        }
        Location::Cookie(name) => {
            let kept: Vec<String> = headers
                .get_all("cookie")
                .iter()
                .filter_map(|c| extract::cookie_without(c, name))
                .collect();
            headers.remove("cookie");
            for cookie in kept {
                headers.add("cookie", &cookie);
            }
        }
    }
}

impl HttpFilter for JwtAuthn {
    /// Only the request headers: bodies and responses pass untouched.
    const CALLBACKS: Callbacks = Callbacks::REQUEST_HEADERS;

    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        let headers = ctx.request_headers().snapshot();
        let found = extract::find(&self.plugin.locations, &headers);
        self.strip_output_headers(ctx, &headers);
        let Some(first) = found.first() else {
            if self.plugin.config.require {
                return self.refuse(ctx, Reason::Missing, "no token");
            }
            self.plugin.metrics.no_token.increment(1);
            return Action::Continue;
        };
        if found[1..].iter().any(|f| f.token != first.token) {
            let places: Vec<String> = found.iter().map(|f| format!("{:?}", f.location)).collect();
            let why = format!("different tokens in {}", places.join(", "));
            return self.refuse(ctx, Reason::MultipleTokens, &why);
        }
        // The same token in several places: it must be acceptable in one.
        let merged;
        let token = if found.len() == 1 {
            first
        } else {
            let mut providers = first.providers.clone();
            for f in &found[1..] {
                for p in &f.providers {
                    if !providers.contains(p) {
                        providers.push(*p);
                    }
                }
            }
            merged = Found {
                providers,
                ..*first
            };
            &merged
        };
        match self.check(token) {
            Ok(verified) => {
                self.admit(ctx, &verified, &found);
                self.plugin.metrics.allowed.increment(1);
                Action::Continue
            }
            Err((reason, why)) => self.refuse(ctx, reason, &why),
        }
    }
}
