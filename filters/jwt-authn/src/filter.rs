//! The per-request filter: finds the token, verifies it with the provider
//! its `iss` names, and then either answers 401 (logging and counting the
//! reason, never the token) or publishes the identity (properties
//! `request.auth.*`, configured headers) and takes the token out of the
//! request unless `forward_original_token`.

use crate::claims;
use crate::extract::{self, Found, Location};
use crate::reject::{self, Reason};
use crate::token::{self, Token};
use crate::{Keys, Plugin, now_ms, verify};
use std::rc::Rc;
use std::time::Duration;
use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::{HeaderList, info};

/// Longest reason detail written to the log.
const MAX_DETAIL: usize = 200;

/// The filter of one request.
pub struct JwtAuthn {
    plugin: Rc<Plugin>,
}

/// A verified token and the provider that accepted it.
struct Verified<'t> {
    provider: usize,
    token: Token<'t>,
}

impl JwtAuthn {
    /// The filter of a new request.
    pub fn new(plugin: Rc<Plugin>) -> JwtAuthn {
        JwtAuthn { plugin }
    }

    /// Checks one token found in the request.
    fn check<'t>(&self, found: &'t Found) -> Result<Verified<'t>, (Reason, String)> {
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
        let token = token::parse(&found.token)?;
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
        let provider = &config.providers[index];
        let keys = match &self.plugin.keys[index] {
            Keys::Inline(keys) => keys.clone(),
            Keys::Fetched(fetched) => fetched.borrow_mut().keys().ok_or_else(|| {
                (
                    Reason::JwksUnavailable,
                    format!("no JWKS for `{issuer}` yet"),
                )
            })?,
        };
        let cache = &self.plugin.verified[index];
        if !cache.borrow_mut().verified(&found.token, &keys) {
            if let Err((reason, why)) = verify::verify(&token, &keys) {
                if let (Reason::UnknownKid, Keys::Fetched(fetched)) =
                    (reason, &self.plugin.keys[index])
                {
                    fetched.borrow().want_refresh(now_ms());
                }
                return Err((reason, why));
            }
            cache.borrow_mut().insert(&found.token, &keys);
        }
        let now = Duration::from_millis(now_ms());
        claims::check_time(&token.claims, now, provider.skew())?;
        let audiences = claims::audiences(&token.claims)?;
        claims::check_audience(&provider.audiences, &audiences)?;
        Ok(Verified {
            provider: index,
            token,
        })
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
    fn admit(&self, ctx: &HttpCtx<Self>, verified: &Verified<'_>, found: &[Found]) {
        let provider = &self.plugin.config.providers[verified.provider];
        let claims = &verified.token.claims;
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str());
        if let (Some(iss), Some(sub)) = (text("iss"), text("sub")) {
            publish(ctx, "principal", format!("{iss}/{sub}").as_bytes());
        }
        let audiences = claims::audiences(claims).unwrap_or_default();
        let audiences = serde_json::to_vec(&audiences).unwrap_or_default();
        publish(ctx, "audiences", &audiences);
        if let Some(azp) = text("azp") {
            publish(ctx, "presenter", azp.as_bytes());
        }
        publish(ctx, "claims", &verified.token.payload_json);
        let headers = ctx.request_headers();
        if let Some(name) = &provider.output_payload_to_header {
            headers.set(name, verified.token.payload_b64);
        }
        for out in &provider.output_claim_to_headers {
            if let Some(value) = claims::claim_text(claims, &out.claim) {
                if value
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
                {
                    headers.set(&out.header, &value);
                }
            }
        }
        if !provider.forward_original_token {
            for f in found {
                remove_token(ctx, f);
            }
        }
    }

    /// Removes headers this filter sets, so a client cannot forge them.
    fn strip_output_headers(&self, ctx: &HttpCtx<Self>) {
        let headers = ctx.request_headers();
        for provider in &self.plugin.config.providers {
            if let Some(name) = &provider.output_payload_to_header {
                headers.remove(name);
            }
            for out in &provider.output_claim_to_headers {
                headers.remove(&out.header);
            }
        }
    }
}

fn publish(ctx: &HttpCtx<JwtAuthn>, name: &str, value: &[u8]) {
    // One dotted segment: the form Envoy stores filter state under and
    // `authz` (and wasp's host) read back.
    let key = format!("request.auth.{name}");
    if let Err(e) = ctx.set_property([key.as_str()], value) {
        wasp_filter_sdk::warn!("jwt-authn: setting request.auth.{name}: {e}");
    }
}

fn remove_token(ctx: &HttpCtx<JwtAuthn>, found: &Found) {
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
    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        let all = ctx.request_headers().all();
        let found = extract::find(&self.plugin.config, &all);
        self.strip_output_headers(ctx);
        let Some(first) = found.first() else {
            if self.plugin.config.require {
                return self.refuse(ctx, Reason::Missing, "no token");
            }
            self.plugin.metrics.no_token.increment(1);
            return Action::Continue;
        };
        if found.iter().any(|f| f.token != first.token) {
            let places: Vec<String> = found.iter().map(|f| format!("{:?}", f.location)).collect();
            let why = format!("different tokens in {}", places.join(", "));
            return self.refuse(ctx, Reason::MultipleTokens, &why);
        }
        // The same token in several places: it must be acceptable in one.
        let mut merged = first.clone();
        for f in &found[1..] {
            for p in &f.providers {
                if !merged.providers.contains(p) {
                    merged.providers.push(*p);
                }
            }
        }
        match self.check(&merged) {
            Ok(verified) => {
                self.admit(ctx, &verified, &found);
                self.plugin.metrics.allowed.increment(1);
                Action::Continue
            }
            Err((reason, why)) => self.refuse(ctx, reason, &why),
        }
    }
}
