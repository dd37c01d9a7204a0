//! The `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` a run sees. They are written to
//! the run's state directory and bind-mounted, so they never become part of the layer.

use crate::spec::{DEFAULT_HOSTNAME, Network};

/// `/etc/hosts` as BuildKit writes it, plus the extra hosts.
pub(crate) fn hosts(hostname: &str, extra_hosts: &[(String, String)]) -> String {
    let name = if hostname.is_empty() { DEFAULT_HOSTNAME } else { hostname };
    let mut out = format!("127.0.0.1\tlocalhost {name}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (host, ip) in extra_hosts {
        out.push_str(&format!("{ip}\t{host}\n"));
    }
    out
}

pub(crate) fn hostname_file(hostname: &str) -> String {
    format!("{hostname}\n")
}

/// Google's resolvers, which Docker falls back to when no usable nameserver remains.
const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// The run's resolv.conf from the host's. With host networking the host file is used as is
/// (a local resolver such as 127.0.0.53 is reachable); in a new network namespace,
/// loopback nameservers are unreachable and dropped, as Docker does.
pub(crate) fn resolv_conf(host: &str, network: Network) -> String {
    if network == Network::Host {
        return host.to_owned();
    }
    let mut out = String::new();
    let mut kept = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            kept += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if kept == 0 {
        for ns in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {ns}\n"));
        }
    }
    out
}

/// Rejects names that would break the generated files or `sethostname`.
pub(crate) fn validate_host_word(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 253 {
        return Err(format!("{what} {value:?} must be 1 to 253 characters"));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control() || c == '#') {
        return Err(format!("{what} {value:?} contains whitespace, control characters or #"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file() {
        let extra = vec![("db".to_owned(), "10.0.0.2".to_owned())];
        assert_eq!(
            hosts("box", &extra),
            "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tdb\n"
        );
        assert!(hosts("", &[]).contains("localhost buildkitsandbox"));
    }

    #[test]
    fn resolv_table() {
        let cases = [
            ("nameserver 127.0.0.53\nsearch lan\n", Network::Host, "nameserver 127.0.0.53\nsearch lan\n"),
            (
                "nameserver 127.0.0.53\nsearch lan\n",
                Network::None,
                "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n",
            ),
            ("nameserver 1.1.1.1\nnameserver ::1\n", Network::None, "nameserver 1.1.1.1\n"),
        ];
        for (host, net, want) in cases {
            assert_eq!(resolv_conf(host, net), want, "{host:?} {net:?}");
        }
    }

    #[test]
    fn host_words() {
        assert!(validate_host_word("hostname", "buildkitsandbox").is_ok());
        for bad in ["", "a b", "a\nb", "x#y"] {
            assert!(validate_host_word("hostname", bad).is_err(), "{bad:?}");
        }
    }
}
