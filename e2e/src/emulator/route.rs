//! Request paths parsed into what they address: discovery documents or a resource
//! collection, object or subresource (pure; percent-decoding included).

/// What a request path names.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Version,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`
    Resources {
        group: String,
        version: String,
    },
    /// A collection, object or subresource.
    Resource(ResourcePath),
    Unknown,
}

/// A resource path, before the type is looked up.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

fn decode(seg: &str) -> String {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a request path (without query string).
pub fn parse(path: &str) -> Route {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (group, version, rest) = match s.as_slice() {
        ["version"] => return Route::Version,
        ["api"] => return Route::CoreVersions,
        ["apis"] => return Route::Groups,
        ["apis", g] => return Route::Group(g.to_string()),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::Unknown,
    };
    let mut p = ResourcePath {
        group: group.into(),
        version: version.into(),
        ..Default::default()
    };
    let tail = match rest {
        [] => {
            return Route::Resources {
                group: group.into(),
                version: version.into(),
            }
        }
        ["namespaces", ns, sub @ ("status" | "finalize")] => {
            p.plural = "namespaces".into();
            p.name = Some(ns.to_string());
            p.subresource = Some(sub.to_string());
            return Route::Resource(p);
        }
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => {
            p.namespace = Some(ns.to_string());
            tail
        }
        tail => tail,
    };
    match tail {
        [plural] => p.plural = plural.to_string(),
        [plural, name] => {
            p.plural = plural.to_string();
            p.name = Some(name.to_string());
        }
        [plural, name, sub] => {
            p.plural = plural.to_string();
            p.name = Some(name.to_string());
            p.subresource = Some(sub.to_string());
        }
        _ => return Route::Unknown,
    }
    Route::Resource(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(
        group: &str,
        ns: Option<&str>,
        plural: &str,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Route {
        Route::Resource(ResourcePath {
            group: group.into(),
            version: "v1".into(),
            namespace: ns.map(String::from),
            plural: plural.into(),
            name: name.map(String::from),
            subresource: sub.map(String::from),
        })
    }

    #[test]
    fn route_table() {
        let cases = [
            ("/version", Route::Version),
            ("/api", Route::CoreVersions),
            ("/apis", Route::Groups),
            ("/apis/apps", Route::Group("apps".into())),
            (
                "/api/v1",
                Route::Resources {
                    group: "".into(),
                    version: "v1".into(),
                },
            ),
            (
                "/apis/apps/v1",
                Route::Resources {
                    group: "apps".into(),
                    version: "v1".into(),
                },
            ),
            (
                "/api/v1/namespaces",
                res("", None, "namespaces", None, None),
            ),
            (
                "/api/v1/namespaces/ns1",
                res("", None, "namespaces", Some("ns1"), None),
            ),
            (
                "/api/v1/namespaces/ns1/status",
                res("", None, "namespaces", Some("ns1"), Some("status")),
            ),
            (
                "/api/v1/namespaces/ns1/configmaps",
                res("", Some("ns1"), "configmaps", None, None),
            ),
            (
                "/api/v1/namespaces/ns1/configmaps/c",
                res("", Some("ns1"), "configmaps", Some("c"), None),
            ),
            (
                "/apis/apps/v1/namespaces/n/deployments/d/status",
                res("apps", Some("n"), "deployments", Some("d"), Some("status")),
            ),
            (
                "/apis/apps/v1/deployments",
                res("apps", None, "deployments", None, None),
            ),
            (
                "/apis/rbac/v1/clusterroles/system%3Aadmin",
                res("rbac", None, "clusterroles", Some("system:admin"), None),
            ),
            ("/healthz", Route::Unknown),
            ("/api/v1/a/b/c/d", Route::Unknown),
        ];
        for (path, want) in cases {
            assert_eq!(parse(path), want, "{path}");
        }
    }
}
