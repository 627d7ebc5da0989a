//! Listings of a tree: relative path → (POSIX `cksum`, size), for this host
//! (computed here) and for the cluster (`find . -type f -exec cksum {} +`).

use std::collections::BTreeMap;
use std::path::{Component, Path};

use crate::cksum;
use crate::error::{ClusterError, Result};
use crate::ssh::Remote;

/// A tree: relative path (with `/`) → (cksum, size); plus what is neither file nor directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Regular files.
    pub files: BTreeMap<String, (u32, u64)>,
    /// Symlinks, devices, FIFOs, sockets (never transferred).
    pub others: Vec<String>,
}

impl Listing {
    /// Total bytes of the files.
    pub fn bytes(&self) -> u64 {
        self.files.values().map(|v| v.1).sum()
    }

    /// Files of `self` that `other` lacks or holds with another size or sum.
    pub fn missing_in(&self, other: &Listing) -> Vec<String> {
        self.files
            .iter()
            .filter(|(k, v)| other.files.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The regular files under `root`, relative, sorted (directories walked; anything else refused).
pub fn local_files(root: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| ClusterError::io(&d, e))? {
            let e = e.map_err(|e| ClusterError::io(&d, e))?;
            let ft = e.file_type().map_err(|er| ClusterError::io(e.path(), er))?;
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let rel = relative(root, &p)?;
                let size = e.metadata().map_err(|er| ClusterError::io(&p, er))?.len();
                out.push((rel, size));
            } else {
                return Err(ClusterError::Invalid(format!(
                    "{} is a symlink or special file; only plain files are transferred",
                    p.display()
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `root`-relative path with `/` separators; refuses names that cannot travel (newlines).
pub fn relative(root: &Path, p: &Path) -> Result<String> {
    let rel = p.strip_prefix(root).map_err(|_| {
        ClusterError::Invalid(format!("{} is not under {}", p.display(), root.display()))
    })?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => {
                let s = s.to_str().ok_or_else(|| {
                    ClusterError::Invalid(format!("{} is not UTF-8", p.display()))
                })?;
                if s.contains(['\n', '\r']) {
                    return Err(ClusterError::Invalid(format!(
                        "{} has a line break in its name",
                        p.display()
                    )));
                }
                parts.push(s.to_owned());
            }
            _ => {
                return Err(ClusterError::Invalid(format!(
                    "{} is not a plain relative path",
                    p.display()
                )));
            }
        }
    }
    Ok(parts.join("/"))
}

/// A local listing with checksums (reads every file).
pub fn local(root: &Path) -> Result<Listing> {
    let mut l = Listing::default();
    if !root.exists() {
        return Ok(l);
    }
    for (rel, _) in local_files(root)? {
        let sum = cksum::of_file(&root.join(&rel))?;
        l.files.insert(rel, sum);
    }
    Ok(l)
}

const LIST: &str = r#"[ -d "$1" ] || exit 0
cd -- "$1" || exit 1
find . \( -type f -exec cksum {} + \) -o \( ! -type d -exec printf 'OTHER %s\n' {} + \) || exit 1"#;

/// The cluster's listing of `dir` (empty when it does not exist).
pub async fn remote(r: &Remote, dir: &str) -> Result<Listing> {
    let out = r.script(LIST, &[dir.to_owned()]).await?;
    parse(&out).map_err(|reason| ClusterError::Parse {
        command: format!("find {dir} -exec cksum"),
        reason,
    })
}

/// Sizes of the files under the current folder: `F SIZE path` lines from GNU find's `-printf`
/// (no file is read); where find has no `-printf` (BusyBox), `cksum` lines (every file read),
/// which [`parse_sizes`] reads as well. The upload's untar session appends it, so what it
/// unpacked is listed without a second round trip.
pub const SIZES_HERE: &str = r"if find . -maxdepth 0 -printf '' 2>/dev/null; then
  find . \( -type f -printf 'F %s ./%P\n' \) -o \( ! -type d -printf 'OTHER ./%P\n' \) || exit 1
else
  find . \( -type f -exec cksum {} + \) -o \( ! -type d -exec printf 'OTHER %s\n' {} + \) || exit 1
fi";

/// The cluster's files under `dir` with their sizes (empty when it does not exist); what is
/// neither file nor folder is refused.
pub async fn remote_sizes(r: &Remote, dir: &str) -> Result<BTreeMap<String, u64>> {
    let script = format!("[ -d \"$1\" ] || exit 0\ncd -- \"$1\" || exit 1\n{SIZES_HERE}");
    let out = r.script(&script, &[dir.to_owned()]).await?;
    sizes_from(&out, dir)
}

/// The sizes a [`SIZES_HERE`] listing of `dir` printed; what is neither file nor folder is refused.
pub fn sizes_from(out: &str, dir: &str) -> Result<BTreeMap<String, u64>> {
    let sizes = parse_sizes(out).map_err(|reason| ClusterError::Parse {
        command: format!("find {dir} -printf"),
        reason,
    })?;
    match sizes.1.first() {
        Some(other) => Err(ClusterError::Invalid(format!(
            "{dir}/{other} on the cluster is a symlink or special file; only plain files are transferred"
        ))),
        None => Ok(sizes.0),
    }
}

/// Parses [`SIZES_HERE`]' output: the files' sizes, and what is neither file nor folder.
pub fn parse_sizes(out: &str) -> std::result::Result<(BTreeMap<String, u64>, Vec<String>), String> {
    let mut sizes = BTreeMap::new();
    let mut cksum_lines = String::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("F ") {
            let (size, path) = rest
                .split_once(' ')
                .ok_or_else(|| format!("unexpected line `{line}`"))?;
            let size: u64 = size.parse().map_err(|_| format!("bad size in `{line}`"))?;
            let path = path
                .strip_prefix("./")
                .ok_or_else(|| format!("unexpected path in `{line}`"))?;
            sizes.insert(path.to_owned(), size);
        } else {
            cksum_lines.push_str(line);
            cksum_lines.push('\n');
        }
    }
    let l = parse(&cksum_lines)?;
    sizes.extend(l.files.into_iter().map(|(k, v)| (k, v.1)));
    Ok((sizes, l.others))
}

/// Compares the files that should be there (path → size) with the cluster's; `Err` names the
/// first differences.
pub fn compare_sizes(
    what: &str,
    want: &BTreeMap<String, u64>,
    have: &BTreeMap<String, u64>,
) -> Result<()> {
    let differ: Vec<String> = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(v))
        .map(|(k, v)| match have.get(k) {
            None => format!("{k} (missing)"),
            Some(s) => format!("{k} ({s} bytes; expected {v})"),
        })
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(ClusterError::Verify {
        what: what.to_owned(),
        reason: format!(
            "{} of {} files differ: {}{}",
            differ.len(),
            want.len(),
            differ[..differ.len().min(5)].join(", "),
            if differ.len() > 5 { ", …" } else { "" }
        ),
    })
}

/// Every multiply-linked file under the job folder: `INODE NLINK ./path` (POSIX `find` and
/// `ls -ldi`; the inode and link count are the first and third fields).
/// One `find` with GNU's `-printf` (no process per file); where find has no `-printf`
/// (BusyBox), `ls -ldi` per file, batched by `-exec … {} +`.
const LINKS: &str = r#"[ -d "$1" ] || exit 0
cd -- "$1" || exit 1
if find . -maxdepth 0 -printf '' 2>/dev/null; then
  find . -type f -links +1 -printf '%i %n %p\n' || exit 1
else
  find . -type f -links +1 -exec sh -c 'for f; do set -- $(ls -ldi -- "$f"); printf "%s %s %s\n" "$1" "$3" "$f"; done' sh {} + || exit 1
fi"#;

/// A file with more than one name: its inode, its link count and one of its paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// The path, relative to the listed folder.
    pub path: String,
    /// The inode (with the device, when known: all names in one folder share the device).
    pub inode: u64,
    /// How many names the file has.
    pub nlink: u64,
}

/// The files under `outputs` (relative to `job`, e.g. `data/out`) that are hard links to a
/// file with a name outside `job`: every name of each file is counted among `linked` (all
/// multiply-linked files of the job folder), and one with fewer names there than links is
/// linked from elsewhere.
pub fn linked_from_outside<'a>(linked: &'a [Linked], outputs: &str) -> Vec<&'a Linked> {
    let mut names: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    for l in linked {
        *names.entry(l.inode).or_default() += 1;
    }
    let prefix = format!("{}/", outputs.trim_end_matches('/'));
    linked
        .iter()
        .filter(|l| l.path.starts_with(&prefix))
        .filter(|l| names.get(&l.inode).copied().unwrap_or(0) < l.nlink)
        .collect()
}

/// The multiply-linked files of the cluster's folder `dir` (empty when it does not exist).
pub async fn remote_links(r: &Remote, dir: &str) -> Result<Vec<Linked>> {
    let out = r.script(LINKS, &[dir.to_owned()]).await?;
    let mut linked = Vec::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let mut it = line.splitn(3, ' ');
        let parsed = match (it.next(), it.next(), it.next()) {
            (Some(i), Some(n), Some(p)) => {
                i.parse().ok().zip(n.parse().ok()).zip(p.strip_prefix("./"))
            }
            _ => None,
        };
        let Some(((inode, nlink), path)) = parsed else {
            return Err(ClusterError::Parse {
                command: format!("find {dir} -links +1"),
                reason: format!("unexpected line `{line}`"),
            });
        };
        linked.push(Linked {
            path: path.to_owned(),
            inode,
            nlink,
        });
    }
    Ok(linked)
}

/// Parses `cksum` lines (`CRC SIZE ./path`) and `OTHER ./path` lines.
pub fn parse(out: &str) -> std::result::Result<Listing, String> {
    let mut l = Listing::default();
    for line in out.lines().filter(|l| !l.is_empty()) {
        if let Some(p) = line.strip_prefix("OTHER ") {
            l.others.push(p.trim_start_matches("./").to_owned());
            continue;
        }
        let mut it = line.splitn(3, ' ');
        let (Some(crc), Some(size), Some(path)) = (it.next(), it.next(), it.next()) else {
            return Err(format!("unexpected line `{line}`"));
        };
        let crc: u32 = crc.parse().map_err(|_| format!("bad sum in `{line}`"))?;
        let size: u64 = size.parse().map_err(|_| format!("bad size in `{line}`"))?;
        let path = path
            .strip_prefix("./")
            .ok_or_else(|| format!("unexpected path in `{line}`"))?;
        l.files.insert(path.to_owned(), (crc, size));
    }
    Ok(l)
}

/// Compares what should be there with what is; `Err` names the first differences.
pub fn compare(what: &str, want: &Listing, have: &Listing) -> Result<()> {
    let missing = want.missing_in(have);
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = missing
        .iter()
        .take(5)
        .map(|m| match have.files.get(m) {
            None => format!("{m} (missing)"),
            Some((c, s)) => {
                let (wc, ws) = want.files[m];
                format!("{m} ({s} bytes, sum {c}; expected {ws} bytes, sum {wc})")
            }
        })
        .collect();
    Err(ClusterError::Verify {
        what: what.to_owned(),
        reason: format!(
            "{} of {} files differ: {}{}",
            missing.len(),
            want.files.len(),
            shown.join(", "),
            if missing.len() > 5 { ", …" } else { "" }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cksum_listings_parse() {
        let l = parse("3015617425 6 ./a/b c.txt\n4294967295 0 ./empty\nOTHER ./link\n").unwrap();
        assert_eq!(l.files["a/b c.txt"], (3_015_617_425, 6));
        assert_eq!(l.files["empty"], (4_294_967_295, 0));
        assert_eq!(l.others, ["link"]);
        assert!(parse("garbage\n").is_err());
        let mut other = l.clone();
        other.files.insert("empty".into(), (1, 0));
        other.files.remove("a/b c.txt");
        assert_eq!(l.missing_in(&other), ["a/b c.txt", "empty"]);
        let e = compare("upload", &l, &other).unwrap_err().to_string();
        assert!(
            e.contains("2 of 2 files differ") && e.contains("(missing)"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod link_tests {
    use super::*;

    /// A folder under `dir` whose `find` refuses `-printf`, as BusyBox's does; put it first in
    /// `PATH` to take the scripts' fallback branch.
    fn find_without_printf(dir: &Path) -> std::path::PathBuf {
        let shim = dir.join("shim");
        std::fs::create_dir_all(&shim).unwrap();
        let real_find = ["/usr/bin/find", "/bin/find"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap();
        std::fs::write(
            shim.join("find"),
            format!("#!/bin/sh\nfor a; do [ \"$a\" = -printf ] && {{ echo 'find: unknown predicate' >&2; exit 1; }}; done\nexec {real_find} \"$@\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(
            shim.join("find"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        shim
    }

    #[test]
    fn links_between_names_inside_the_job_are_its_own_and_others_are_not() {
        let l = |path: &str, inode, nlink| Linked {
            path: path.into(),
            inode,
            nlink,
        };
        let linked = [
            // an output sharing an input's file: both names in the job folder
            l("data/in/a.zarr/.zattrs", 1, 2),
            l("data/out/a.zarr/.zattrs", 1, 2),
            // an output linked to a file elsewhere: one of two names here
            l("data/out/secret.txt", 2, 2),
            // an input linked from the storage: not an output
            l("data/in/b.tif", 3, 2),
        ];
        let outside: Vec<&str> = linked_from_outside(&linked, "data/out")
            .into_iter()
            .map(|l| l.path.as_str())
            .collect();
        assert_eq!(outside, ["data/out/secret.txt"]);
    }

    /// Both branches of the link listing give the same lines: GNU find's `-printf`, and the
    /// `ls` loop a find without `-printf` falls back to.
    #[test]
    fn the_link_listing_is_the_same_with_and_without_printf() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("job");
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::write(dir.join("out/a b.txt"), b"x").unwrap();
        std::fs::hard_link(dir.join("out/a b.txt"), dir.join("out/c.txt")).unwrap();
        std::fs::write(dir.join("single.txt"), b"y").unwrap();
        let shim = find_without_printf(d.path());
        let run = |path: &str| {
            let out = std::process::Command::new("sh")
                .args(["-c", LINKS, "sh"])
                .arg(&dir)
                .env("PATH", path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut lines: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            lines.sort();
            lines
        };
        let system = std::env::var("PATH").unwrap_or_default();
        let printf = run(&system);
        let fallback = run(&format!("{}:{system}", shim.display()));
        assert_eq!(printf.len(), 2, "{printf:?}");
        assert!(
            printf.iter().any(|l| l.ends_with(" 2 ./out/a b.txt")),
            "{printf:?}"
        );
        assert_eq!(printf, fallback);
    }

    /// The size listing reads the same with GNU find's `-printf` and with the `cksum` lines a
    /// find without it falls back to.
    #[test]
    fn the_size_listing_is_the_same_with_and_without_printf() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("job");
        std::fs::create_dir_all(dir.join("a b/c")).unwrap();
        std::fs::write(dir.join("a b/c/x y.txt"), b"hello").unwrap();
        std::fs::write(dir.join("empty"), b"").unwrap();
        std::os::unix::fs::symlink("empty", dir.join("link")).unwrap();
        let shim = find_without_printf(d.path());
        let run = |path: &str| {
            let out = std::process::Command::new("sh")
                .args(["-c", SIZES_HERE])
                .current_dir(&dir)
                .env("PATH", path)
                .output()
                .unwrap();
            assert!(out.status.success());
            parse_sizes(&String::from_utf8(out.stdout).unwrap()).unwrap()
        };
        let system = std::env::var("PATH").unwrap_or_default();
        let printf = run(&system);
        let fallback = run(&format!("{}:{system}", shim.display()));
        assert_eq!(printf.0.get("a b/c/x y.txt"), Some(&5));
        assert_eq!(printf.0.get("empty"), Some(&0));
        assert_eq!(printf.1, ["link"]);
        assert_eq!(printf, fallback);
        let mut want = printf.0.clone();
        assert!(compare_sizes("upload", &want, &printf.0).is_ok());
        want.insert("gone".into(), 3);
        want.insert("empty".into(), 1);
        let e = compare_sizes("upload", &want, &printf.0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2 of 3 files differ") && e.contains("gone (missing)"),
            "{e}"
        );
    }
}
