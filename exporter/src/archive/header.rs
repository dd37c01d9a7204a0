//! Byte-exact encoding of tar headers: USTAR where the values fit, PAX extended headers
//! (`path`, `linkpath`, `uid`, `gid`, `size`, `mtime`, `SCHILY.xattr.*`) where they do not.
//!
//! Written by hand rather than through the `tar` crate so that every byte is under our
//! control: the same entry always encodes to the same bytes, `uname`/`gname` stay empty, and
//! no atime/ctime ever appears (these are what make layers reproducible).

use super::entry::{Entry, Kind};

/// Tar's unit of storage.
pub(crate) const BLOCK: usize = 512;

/// Largest value of a 7-digit octal field (mode, uid, gid, devmajor, devminor).
const MAX_OCTAL7: u64 = 0o7777777;
/// Largest value of an 11-digit octal field (size, mtime).
const MAX_OCTAL11: u64 = 0o77777777777;

const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;

/// Why an entry cannot be encoded.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// A device number does not fit the 7-digit octal field and PAX has no keyword for it.
    #[error("device number {major}:{minor} is too large for a tar header")]
    DeviceTooLarge {
        /// Major number.
        major: u64,
        /// Minor number.
        minor: u64,
    },
    /// A name contains a NUL byte, which tar cannot represent.
    #[error("path contains a nul byte")]
    NulInName,
}

/// Encodes the header block(s) of `entry`: an optional PAX extended header (its own header
/// plus padded records) followed by the USTAR header. The caller writes the content after.
pub(crate) fn encode(entry: &Entry) -> Result<Vec<u8>, HeaderError> {
    if entry.path.contains(&0) || entry.link_target().is_some_and(|l| l.contains(&0)) {
        return Err(HeaderError::NulInName);
    }
    let mut name = entry.path.clone();
    if matches!(entry.kind, Kind::Dir) {
        name.push(b'/');
    }
    let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();

    let (ustar_prefix, ustar_name) = match split_ustar_path(&name) {
        Some((p, n)) => (p.to_vec(), n.to_vec()),
        None => {
            pax.push((b"path".to_vec(), name.clone()));
            (Vec::new(), truncate(&name, NAME_LEN).to_vec())
        }
    };
    let link = entry.link_target().unwrap_or(&[]);
    let ustar_link = if link.len() > NAME_LEN {
        pax.push((b"linkpath".to_vec(), link.to_vec()));
        truncate(link, NAME_LEN)
    } else {
        link
    };
    let uid = fit_or_pax(entry.uid, MAX_OCTAL7, "uid", &mut pax);
    let gid = fit_or_pax(entry.gid, MAX_OCTAL7, "gid", &mut pax);
    let size = fit_or_pax(entry.size(), MAX_OCTAL11, "size", &mut pax);
    let mtime = match u64::try_from(entry.mtime) {
        Ok(m) if m <= MAX_OCTAL11 => m,
        _ => {
            pax.push((b"mtime".to_vec(), entry.mtime.to_string().into_bytes()));
            0
        }
    };
    let (major, minor) = match entry.kind {
        Kind::Char { major, minor } | Kind::Block { major, minor } => {
            if major > MAX_OCTAL7 || minor > MAX_OCTAL7 {
                return Err(HeaderError::DeviceTooLarge { major, minor });
            }
            (major, minor)
        }
        _ => (0, 0),
    };
    for (key, value) in &entry.xattrs {
        let mut k = b"SCHILY.xattr.".to_vec();
        k.extend_from_slice(key);
        pax.push((k, value.clone()));
    }

    let mut out = Vec::with_capacity(BLOCK * 2);
    if !pax.is_empty() {
        // Sorted so that the same set of records always encodes identically.
        pax.sort();
        let records = pax_records(&pax);
        let mut pax_name = b"PaxHeaders.0/".to_vec();
        pax_name.extend_from_slice(last_component(&name));
        let hdr = Ustar {
            name: truncate(&pax_name, NAME_LEN),
            prefix: &[],
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: records.len() as u64,
            mtime,
            typeflag: b'x',
            linkname: &[],
            devmajor: 0,
            devminor: 0,
        };
        out.extend_from_slice(&hdr.encode());
        out.extend_from_slice(&records);
        pad_to_block(&mut out);
    }
    let hdr = Ustar {
        name: &ustar_name,
        prefix: &ustar_prefix,
        mode: u64::from(entry.mode & 0o7777),
        uid,
        gid,
        size,
        mtime,
        typeflag: entry.typeflag(),
        linkname: ustar_link,
        devmajor: major,
        devminor: minor,
    };
    out.extend_from_slice(&hdr.encode());
    Ok(out)
}

/// Zero bytes needed after `len` bytes of content to reach a block boundary.
pub(crate) fn padding(len: u64) -> usize {
    let rem = (len % BLOCK as u64) as usize;
    if rem == 0 { 0 } else { BLOCK - rem }
}

fn pad_to_block(buf: &mut Vec<u8>) {
    let pad = padding(buf.len() as u64);
    buf.resize(buf.len() + pad, 0);
}

fn fit_or_pax(value: u64, max: u64, key: &str, pax: &mut Vec<(Vec<u8>, Vec<u8>)>) -> u64 {
    if value <= max {
        value
    } else {
        pax.push((key.as_bytes().to_vec(), value.to_string().into_bytes()));
        0
    }
}

fn truncate(b: &[u8], n: usize) -> &[u8] {
    &b[..b.len().min(n)]
}

fn last_component(name: &[u8]) -> &[u8] {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    match trimmed.iter().rposition(|&c| c == b'/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// Splits `name` into USTAR `prefix` and `name` fields, or `None` when it needs PAX.
/// Like Go's archive/tar, the split is at the last `/` that makes both parts fit.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= NAME_LEN {
        return Some((&[], name));
    }
    if name.len() > PREFIX_LEN + 1 + NAME_LEN {
        return None;
    }
    // The slash may sit at index PREFIX_LEN at most; a trailing slash of a directory
    // cannot be the split point (the name part would be empty).
    let end = name.len().saturating_sub(1).min(PREFIX_LEN + 1);
    let i = name[..end].iter().rposition(|&c| c == b'/')?;
    let (prefix, rest) = (&name[..i], &name[i + 1..]);
    if prefix.is_empty() || rest.is_empty() || rest.len() > NAME_LEN || prefix.len() > PREFIX_LEN {
        return None;
    }
    Some((prefix, rest))
}

/// PAX records: `"<len> <key>=<value>\n"` where `<len>` counts the whole record, itself
/// included.
fn pax_records(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + body.to_string().len();
        if len.to_string().len() != body.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

struct Ustar<'a> {
    name: &'a [u8],
    prefix: &'a [u8],
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    linkname: &'a [u8],
    devmajor: u64,
    devminor: u64,
}

impl Ustar<'_> {
    fn encode(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[0..self.name.len()].copy_from_slice(self.name);
        octal(&mut b[100..108], self.mode);
        octal(&mut b[108..116], self.uid);
        octal(&mut b[116..124], self.gid);
        octal(&mut b[124..136], self.size);
        octal(&mut b[136..148], self.mtime);
        b[156] = self.typeflag;
        b[157..157 + self.linkname.len()].copy_from_slice(self.linkname);
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        // uname (265..297) and gname (297..329) stay empty: ids are numeric only.
        octal(&mut b[329..337], self.devmajor);
        octal(&mut b[337..345], self.devminor);
        b[345..345 + self.prefix.len()].copy_from_slice(self.prefix);
        // The checksum is computed with its own field filled with spaces.
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        let s = format!("{sum:06o}\0 ");
        b[148..156].copy_from_slice(s.as_bytes());
        b
    }
}

/// Zero-padded octal digits followed by a NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn pax_record_lengths_count_themselves() {
        for (k, v, want) in [
            ("path", "a", "9 path=a\n"),
            // 98-byte body + 2 digits = 100, which itself has 3 digits.
            ("path", &"x".repeat(91), &format!("101 path={}\n", "x".repeat(91))),
        ] {
            let got = pax_records(&[(k.as_bytes().to_vec(), v.as_bytes().to_vec())]);
            assert_eq!(String::from_utf8(got.clone()).unwrap(), want);
            let n: usize = std::str::from_utf8(&got).unwrap().split(' ').next().unwrap().parse().unwrap();
            assert_eq!(n, got.len());
        }
    }

    #[test]
    fn ustar_split_table() {
        let long_dir = "d".repeat(120);
        let cases: Vec<(String, Option<(String, String)>)> = vec![
            ("short".into(), Some(("".into(), "short".into()))),
            (format!("{long_dir}/file"), Some((long_dir.clone(), "file".into()))),
            ("n".repeat(101), None),
            (format!("{long_dir}/{}", "n".repeat(101)), None),
            (format!("{}/x", "p".repeat(156)), None),
            (format!("{long_dir}/"), None),
        ];
        for (name, want) in cases {
            let got = split_ustar_path(name.as_bytes()).map(|(p, n)| {
                (String::from_utf8(p.to_vec()).unwrap(), String::from_utf8(n.to_vec()).unwrap())
            });
            assert_eq!(got, want, "{name}");
        }
    }

    fn entry(path: &str, kind: Kind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            xattrs: Vec::new(),
        }
    }

    /// Encodes one entry (with zero content) as a whole archive and reads it back.
    type PaxRecords = Vec<(String, Vec<u8>)>;

    fn round_trip(e: &Entry) -> (tar::Header, PaxRecords, Vec<u8>) {
        let mut bytes = encode(e).unwrap();
        if e.size() > 0 && e.size() < 1 << 20 {
            bytes.resize(bytes.len() + e.size() as usize + padding(e.size()), 0);
        }
        bytes.resize(bytes.len() + 2 * BLOCK, 0);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().unwrap();
        let mut got = entries.next().unwrap().unwrap();
        let pax = got
            .pax_extensions()
            .unwrap()
            .map(|exts| {
                exts.map(|x| {
                    let x = x.unwrap();
                    (x.key().unwrap().to_string(), x.value_bytes().to_vec())
                })
                .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let path = got.path_bytes().into_owned();
        let header = got.header().clone();
        let _ = got.read_to_end(&mut Vec::new());
        (header, pax, path)
    }

    #[test]
    fn values_beyond_ustar_go_to_pax() {
        let mut big = entry("big", Kind::File { size: 9 << 30, source: None });
        big.uid = 3_000_000;
        big.gid = 4_000_000;
        big.mtime = -5;
        let (h, pax, _) = round_trip(&big);
        let pax: std::collections::BTreeMap<_, _> = pax.into_iter().collect();
        assert_eq!(pax.get("size").map(Vec::as_slice), Some(&b"9663676416"[..]));
        assert_eq!(pax.get("uid").map(Vec::as_slice), Some(&b"3000000"[..]));
        assert_eq!(pax.get("gid").map(Vec::as_slice), Some(&b"4000000"[..]));
        assert_eq!(pax.get("mtime").map(Vec::as_slice), Some(&b"-5"[..]));
        assert_eq!(h.username_bytes(), Some(&b""[..]));

        let target = "t".repeat(150);
        let mut link = entry("l", Kind::Symlink(target.as_bytes().to_vec()));
        link.xattrs = vec![(b"user.a".to_vec(), b"\x00binary\xff".to_vec())];
        let (h, pax, _) = round_trip(&link);
        assert_eq!(h.entry_type(), tar::EntryType::Symlink);
        assert!(pax.contains(&("linkpath".to_string(), target.into_bytes())));
        assert!(pax.contains(&("SCHILY.xattr.user.a".to_string(), b"\x00binary\xff".to_vec())));

        let dir = entry(&format!("{}/{}", "a".repeat(150), "b".repeat(20)), Kind::Dir);
        let (h, pax, path) = round_trip(&dir);
        assert!(pax.is_empty(), "fits USTAR with a prefix");
        assert_eq!(path, format!("{}/{}/", "a".repeat(150), "b".repeat(20)).into_bytes());
        assert_eq!(h.entry_type(), tar::EntryType::Directory);
    }

    #[test]
    fn nul_bytes_and_huge_devices_are_errors() {
        assert!(matches!(encode(&entry("a\0b", Kind::Dir)), Err(HeaderError::NulInName)));
        let dev = entry("d", Kind::Char { major: 1 << 30, minor: 0 });
        assert!(matches!(encode(&dev), Err(HeaderError::DeviceTooLarge { .. })));
    }

    #[test]
    fn octal_fields_are_zero_padded() {
        let mut f = [0xffu8; 8];
        octal(&mut f, 0o755);
        assert_eq!(&f, b"0000755\0");
    }
}
