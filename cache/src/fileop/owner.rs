//! `--chown` users and groups, resolved against the destination root's `/etc/passwd` and
//! `/etc/group` (BuildKit's `readUser`).

use super::resolve::{Root, is_missing};
use super::{FileOpError, Owner};

/// Numeric owner of created files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Resolves an owner to ids. Names are looked up inside `root` (following symlinks inside
/// it). Like BuildKit, a name that is not there (or a missing passwd/group file, as in a
/// scratch image) resolves to 0 rather than failing: `USER app` + `WORKDIR` on an image
/// without that user builds with BuildKit, so it must build here too.
pub(crate) fn resolve_owner(root: &Root, owner: Option<&Owner>) -> Result<Option<Ids>, FileOpError> {
    let Some(owner) = owner else { return Ok(None) };
    match owner {
        Owner::Ids { uid, gid } => Ok(Some(Ids { uid: *uid, gid: *gid })),
        Owner::Names { user, group } => {
            let (uid, primary_gid) = match user.parse::<u32>() {
                Ok(uid) => (uid, uid),
                Err(_) => {
                    let passwd = read_db(root, "/etc/passwd")?;
                    lookup(&passwd, user, 7)
                        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                        .unwrap_or_else(|| {
                            tracing::warn!(user = %user, "user not in /etc/passwd, using 0:0 as BuildKit does");
                            (0, 0)
                        })
                }
            };
            let gid = match group {
                None => primary_gid,
                Some(group) => match group.parse::<u32>() {
                    Ok(gid) => gid,
                    Err(_) => {
                        let groups = read_db(root, "/etc/group")?;
                        lookup(&groups, group, 3).and_then(|f| f[2].parse().ok()).unwrap_or_else(|| {
                            tracing::warn!(group = %group, "group not in /etc/group, using 0 as BuildKit does");
                            0
                        })
                    }
                },
            };
            Ok(Some(Ids { uid, gid }))
        }
    }
}

fn read_db(root: &Root, path: &str) -> Result<String, FileOpError> {
    let host = root.resolve(path, true)?;
    match std::fs::read(&host) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if is_missing(&e) => Ok(String::new()),
        Err(e) => Err(root.io_err("read", &host, e)),
    }
}

/// The first line of a colon-separated database whose first field is `name` and that has at
/// least `min_fields` fields.
fn lookup<'a>(db: &'a str, name: &str, min_fields: usize) -> Option<Vec<&'a str>> {
    db.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= min_fields && f[0] == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nweb:x:1000:1001::/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\ndaemon:x:1:\nnobody:x:65534:\n").unwrap();
        let root = Root::new(dir.path());
        let names = |u: &str, g: Option<&str>| Owner::Names { user: u.into(), group: g.map(Into::into) };
        let cases: &[(Owner, (u32, u32))] = &[
            (names("daemon", None), (1, 1)),
            (names("web", None), (1000, 1001)),
            (names("1000", Some("nobody")), (1000, 65534)),
            (names("42", None), (42, 42)),
            (names("web", Some("7")), (1000, 7)),
            (Owner::Ids { uid: 5, gid: 6 }, (5, 6)),
        ];
        for (owner, (uid, gid)) in cases {
            assert_eq!(
                resolve_owner(&root, Some(owner)).unwrap(),
                Some(Ids { uid: *uid, gid: *gid }),
                "{owner:?}"
            );
        }
        // Unknown names fall back to root, like BuildKit's readUser.
        assert_eq!(resolve_owner(&root, Some(&names("nosuch", None))).unwrap(), Some(Ids { uid: 0, gid: 0 }));
        assert_eq!(
            resolve_owner(&root, Some(&names("1", Some("nosuch")))).unwrap(),
            Some(Ids { uid: 1, gid: 0 })
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve_owner(&Root::new(empty.path()), Some(&names("app", None))).unwrap(),
            Some(Ids { uid: 0, gid: 0 })
        );
    }
}
