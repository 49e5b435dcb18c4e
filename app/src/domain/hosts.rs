//! Which `Host` names a server with API keys off answers (DNS rebinding):
//! always IP addresses, one-label names and the names nobody can register
//! in the public DNS ([`BUILT_IN`]: `localhost`, `*.localhost`, `.internal`,
//! a cluster's `.svc`; `.cluster.local` only inside Kubernetes, as
//! elsewhere `.local` names are answered by anyone on the network), plus
//! the configured patterns: `name`, `.domain` or `*.domain` (the domain and
//! every name under it) or `*` (any).

use std::net::IpAddr;

/// The names always answered besides addresses and one-label names.
pub const BUILT_IN: [&str; 4] = ["localhost", ".localhost", ".internal", ".svc"];

/// A cluster's own domain, built in when running in Kubernetes.
pub const IN_CLUSTER: &str = ".cluster.local";

/// The built-in and configured patterns, checked and lower-cased.
#[derive(Clone, Debug)]
pub struct HostPatterns(Vec<String>);

impl HostPatterns {
    /// The patterns (with [`IN_CLUSTER`] when `in_cluster`), or what is
    /// wrong with the first bad one.
    pub fn parse<S: AsRef<str>>(entries: &[S], in_cluster: bool) -> Result<Self, String> {
        let patterns = entries.iter().map(|entry| {
            let entry = entry.as_ref().trim().trim_end_matches('.').to_ascii_lowercase();
            let entry = entry
                .strip_prefix('*')
                .filter(|rest| rest.starts_with('.'))
                .map_or(entry.clone(), str::to_owned);
            let name = entry.strip_prefix('.').unwrap_or(&entry);
            let name_like = !name.is_empty()
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if entry == "*" || name_like {
                Ok(entry)
            } else {
                Err(format!("`{entry}` is not a host name, `.domain` or `*` (no scheme, port or path)"))
            }
        });
        let mut patterns: Vec<String> = patterns.collect::<Result<_, _>>()?;
        patterns.extend(BUILT_IN.map(str::to_owned));
        patterns.extend(in_cluster.then(|| IN_CLUSTER.to_owned()));
        Ok(Self(patterns))
    }

    /// Whether a request whose `Host` header (or URI authority) is
    /// `authority`, with or without a port, is answered.
    pub fn allows(&self, authority: &str) -> bool {
        let host = host_of(authority).trim_end_matches('.').to_ascii_lowercase();
        if host.parse::<IpAddr>().is_ok() || (!host.is_empty() && !host.contains('.')) {
            return true;
        }
        self.0.iter().any(|pattern| match pattern.strip_prefix('.') {
            _ if pattern == "*" => true,
            Some(domain) => {
                host == domain || host.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.'))
            }
            None => host == *pattern,
        })
    }
}

/// The host of `host[:port]` or `[v6]:port`, without brackets or port.
fn host_of(authority: &str) -> &str {
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// `scheme://authority` of an `Origin` value, with the scheme's default
/// port left out, lower-cased; `None` for `null` or anything else.
pub fn origin_authority(origin: &str) -> Option<(String, String)> {
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = authority.to_ascii_lowercase();
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return None;
    }
    Some((scheme.clone(), without_default_port(&scheme, &authority).to_owned()))
}

/// `authority` without `:80` for `http` or `:443` for `https`.
pub fn without_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return authority,
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> HostPatterns {
        HostPatterns::parse::<&str>(&[], true).expect("valid")
    }

    #[test]
    fn addresses_one_label_names_and_listed_names_are_answered() {
        let hosts = defaults();
        for ok in [
            "127.0.0.1:8001",
            "[::1]:8001",
            "10.1.2.3",
            "localhost:8001",
            "LOCALHOST.",
            "app.localhost",
            "session-backend:8000",
            "session-backend.default.svc",
            "session-backend.default.svc.cluster.local:8000",
            "host.docker.internal",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in
            ["attacker.example:8001", "127.0.0.1.nip.io", "localhost.attacker.example", "xsvc.example", ""]
        {
            assert!(!hosts.allows(refused), "{refused}");
        }
        assert!(HostPatterns::parse(&["*"], false).expect("valid").allows("anything.example"));
        for pattern in [".example.com", "*.example.com"] {
            let hosts = HostPatterns::parse(&[pattern], false).expect("valid");
            assert!(hosts.allows("a.b.example.com:443") && hosts.allows("example.com"), "{pattern}");
            assert!(!hosts.allows("badexample.com"), "{pattern}");
        }
        let outside = HostPatterns::parse::<&str>(&[], false).expect("valid");
        assert!(!outside.allows("sb.default.svc.cluster.local"), ".local is mDNS outside a cluster");
    }

    #[test]
    fn patterns_with_schemes_ports_or_paths_are_refused() {
        for bad in ["http://x", "x:8000", "x/y", "", ".", "a..b", "a.*.b", "*x.y"] {
            assert!(HostPatterns::parse(&[bad], false).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_compare_without_default_ports() {
        assert_eq!(origin_authority("http://Example.com:80"), Some(("http".into(), "example.com".into())));
        assert_eq!(origin_authority("https://a:8443"), Some(("https".into(), "a:8443".into())));
        assert_eq!(origin_authority("null"), None);
    }
}
