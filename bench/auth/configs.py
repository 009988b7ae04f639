#!/usr/bin/env python3
"""Writes the configurations of bench/auth.sh: wasp and Envoy with the
jwt-authn → authz chain (the same .wasm files), and Envoy with its native
jwt_authn + rbac filters, all admitting the fixture's tokens of subject
alice and nothing else.

  configs.py FIXTURE.json MODULES_DIR OUT_DIR UPSTREAM_PORT
      writes OUT_DIR/<target>.yaml for every target; ports are the
      placeholders @PROXY_PORT@ and @ADMIN_PORT@ (bench/lib.sh's render)
"""
import json
import sys

ISSUER = "https://idp.test"


def jwt_config(jwks, cache_size=None):
    provider = {"issuer": ISSUER, "audiences": ["api"], "jwks": json.dumps(jwks)}
    if cache_size is not None:
        provider["jwt_cache_size"] = cache_size
    return {"providers": [provider]}


AUTHZ = {"policies": [{"name": "alice", "action": "ALLOW", "rules": [
    {"from": [{"source": {"request_principals": [ISSUER + "/alice"]}}]}]}]}


def wasp(upstream, plugins):
    chain = [{"name": name, "module": module, "configuration": conf,
              "failure_policy": "fail_closed"} for name, module, conf in plugins]
    config = {
        "admin": {"address": "127.0.0.1:@ADMIN_PORT@"},
        "listeners": [{"name": "bench", "address": "127.0.0.1:@PROXY_PORT@", "routes": [
            {"name": "all", "match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}],
        "clusters": [{"name": "upstream", "endpoints": [f"127.0.0.1:{upstream}"],
                      "max_idle_per_endpoint": 1024}],
    }
    if chain:
        config["filter_chains"] = [{"name": "auth", "plugins": chain}]
        config["listeners"][0]["routes"][0]["filter_chain"] = "auth"
    return config


def envoy(upstream, http_filters):
    router = {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": "@ADMIN_PORT@"}}},
        "static_resources": {
            "listeners": [{"name": "bench", "address": {"socket_address": {
                "address": "127.0.0.1", "port_value": "@PROXY_PORT@"}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "bench",
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
                        "http_filters": http_filters + [router]}}]}]}],
            "clusters": [{"name": "upstream", "type": "STATIC", "connect_timeout": "1s",
                          "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [
                              {"endpoint": {"address": {"socket_address": {
                                  "address": "127.0.0.1", "port_value": upstream}}}}]}]}}]},
    }


def envoy_wasm(name, module, conf):
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": name, "root_id": "",
                   "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                     "value": json.dumps(conf)},
                   "vm_config": {"vm_id": name, "runtime": "envoy.wasm.runtime.v8",
                                 "code": {"local": {"filename": module}}}}}}


def envoy_native(jwks, cache):
    provider = {"issuer": ISSUER, "audiences": ["api"],
                "local_jwks": {"inline_string": json.dumps(jwks)},
                "payload_in_metadata": "payload", "forward": False}
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 100}
    # What Istio generates for a RequestAuthentication: a token is optional,
    # a present one must verify; the AuthorizationPolicy then asks for it.
    jwt = {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"idp": provider},
        "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
            {"provider_name": "idp"}, {"allow_missing": {}}]}}}]}}
    rbac = {"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": "ALLOW", "policies": {"alice": {
            "permissions": [{"any": True}],
            "principals": [{"metadata": {"filter": "envoy.filters.http.jwt_authn",
                                         "path": [{"key": "payload"}, {"key": "sub"}],
                                         "value": {"string_match": {"exact": "alice"}}}}]}}}}}
    return [jwt, rbac]


def main():
    fixture_path, modules, out, upstream = sys.argv[1:5]
    upstream = int(upstream)
    jwks = json.load(open(fixture_path))["jwks"]
    jwt_module, authz_module = f"{modules}/jwt_authn.wasm", f"{modules}/wasp_authz.wasm"
    chain = lambda cache=None: [("jwt-authn", jwt_module, jwt_config(jwks, cache)),
                                ("authz", authz_module, AUTHZ)]
    targets = {
        "wasp-none": wasp(upstream, []),
        "wasp-auth": wasp(upstream, chain()),
        "wasp-auth-nocache": wasp(upstream, chain(0)),
        "envoy-v8-none": envoy(upstream, []),
        "envoy-v8-auth": envoy(upstream, [envoy_wasm(n, m, c) for n, m, c in chain()]),
        "envoy-native-auth": envoy(upstream, envoy_native(jwks, False)),
        "envoy-native-auth-cache": envoy(upstream, envoy_native(jwks, True)),
    }
    for name, config in targets.items():
        with open(f"{out}/{name}.yaml", "w") as f:
            # JSON is YAML; the port placeholders are filled in later.
            f.write(json.dumps(config, indent=1).replace('"@PROXY_PORT@"', "@PROXY_PORT@")
                    .replace('"@ADMIN_PORT@"', "@ADMIN_PORT@"))


if __name__ == "__main__":
    main()
