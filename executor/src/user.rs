//! Resolving `USER` against the rootfs' `/etc/passwd` and `/etc/group`, with runc's rules:
//! numeric ids need no entry, names do; supplementary groups come from `/etc/group`
//! membership only when no group was given explicitly.

/// The identity the command runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (passed to `setgroups`).
    pub groups: Vec<u32>,
    /// Home directory from passwd, `/` when unknown.
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0].trim(),
            uid: f[2].trim().parse().ok()?,
            gid: f[3].trim().parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 3 {
            return None;
        }
        Some(GroupEntry {
            name: f[0].trim(),
            gid: f[2].trim().parse().ok()?,
            members: f
                .get(3)
                .map(|m| m.split(',').map(str::trim).filter(|m| !m.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

fn numeric(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`); the error says why.
pub(crate) fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ResolvedUser, String> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u.trim(), Some(g.trim())),
        None => (spec.trim(), None),
    };
    let user_arg = if user_arg.is_empty() { "0" } else { user_arg };
    let user_num = numeric(user_arg);

    let mut out = ResolvedUser { uid: 0, gid: 0, groups: Vec::new(), home: "/".to_owned() };
    let entry = passwd.and_then(|text| {
        passwd_entries(text)
            .find(|e| e.name == user_arg || user_num == Some(e.uid))
            .map(|e| (e.name.to_owned(), e.uid, e.gid, e.home.to_owned()))
    });
    let matched_name = match entry {
        Some((name, uid, gid, home)) => {
            out.uid = uid;
            out.gid = gid;
            if !home.is_empty() {
                out.home = home;
            }
            Some(name)
        }
        None => match user_num {
            Some(uid) => {
                out.uid = uid;
                None
            }
            None if passwd.is_none() => return Err("no /etc/passwd file in the rootfs".to_owned()),
            None => return Err("no matching entries in passwd file".to_owned()),
        },
    };

    match group_arg {
        Some("") => return Err("empty group name".to_owned()),
        Some(group_arg) => {
            let group_num = numeric(group_arg);
            let found = group
                .and_then(|text| {
                    group_entries(text).find(|g| g.name == group_arg || group_num == Some(g.gid))
                })
                .map(|g| g.gid);
            out.gid = match (found, group_num) {
                (Some(gid), _) => gid,
                (None, Some(gid)) => gid,
                (None, None) if group.is_none() => {
                    return Err(format!("group {group_arg}: no /etc/group file in the rootfs"));
                }
                (None, None) => return Err(format!("group {group_arg}: no matching entries in group file")),
            };
        }
        None => {
            if let (Some(name), Some(text)) = (matched_name, group) {
                for g in group_entries(text) {
                    if g.members.contains(&name.as_str()) && !out.groups.contains(&g.gid) {
                        out.groups.push(g.gid);
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000::/home/app:/bin/sh
broken line
";
    const GROUP: &str = "\
root:x:0:
wheel:x:10:root,app
audio:x:29:app
app:x:1000:
staff:x:50:
";

    #[test]
    fn resolution_table() {
        type Want = (u32, u32, &'static [u32], &'static str);
        let cases: &[(&str, Want)] = &[
            ("", (0, 0, &[10], "/root")),
            ("root", (0, 0, &[10], "/root")),
            ("app", (1000, 1000, &[10, 29], "/home/app")),
            ("1000", (1000, 1000, &[10, 29], "/home/app")),
            ("app:staff", (1000, 50, &[], "/home/app")),
            ("app:50", (1000, 50, &[], "/home/app")),
            ("1000:1234", (1000, 1234, &[], "/home/app")),
            ("4242", (4242, 0, &[], "/")),
            ("4242:4343", (4242, 4343, &[], "/")),
            ("daemon", (1, 1, &[], "/usr/sbin")),
        ];
        for (spec, (uid, gid, groups, home)) in cases {
            let got = resolve(spec, Some(PASSWD), Some(GROUP)).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(
                (got.uid, got.gid, got.groups.as_slice(), got.home.as_str()),
                (*uid, *gid, *groups, *home),
                "{spec}"
            );
        }
    }

    #[test]
    fn error_table() {
        let cases: &[(&str, Option<&str>, Option<&str>, &str)] = &[
            ("nobody", Some(PASSWD), Some(GROUP), "no matching entries in passwd file"),
            ("app:nogroup", Some(PASSWD), Some(GROUP), "no matching entries in group file"),
            ("app", None, None, "no /etc/passwd"),
            ("0:wheel", Some(PASSWD), None, "no /etc/group"),
            ("app:", Some(PASSWD), Some(GROUP), "empty group"),
        ];
        for (spec, passwd, group, want) in cases {
            let err = resolve(spec, *passwd, *group).unwrap_err();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn numeric_users_without_files() {
        let got = resolve("12:34", None, None).unwrap();
        assert_eq!((got.uid, got.gid), (12, 34));
        assert_eq!(resolve("", None, None).unwrap().uid, 0);
    }
}
