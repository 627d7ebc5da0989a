//! The `ssh_ciphers` setting: which cipher the daemon's SSH master asks for first.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A `Ciphers` value as ssh config takes it: cipher names (letters, digits, `-`, `.`, `@`)
/// separated by commas, optionally led by `^` (put first), `+` (appended) or `-` (removed).
/// Nothing else can be in it, so it can be written into an ssh config as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CipherList(String);

impl CipherList {
    /// AES-GCM ahead of OpenSSH's own order (which stays offered after it).
    pub fn aes_gcm_first() -> Self {
        CipherList("^aes128-gcm@openssh.com,aes256-gcm@openssh.com".to_owned())
    }

    /// Checks `list`.
    pub fn parse(list: &str) -> Option<Self> {
        let names = list.strip_prefix(['^', '+', '-']).unwrap_or(list);
        let valid = !names.is_empty()
            && names.split(',').all(|n| {
                !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '@'))
            });
        valid.then(|| CipherList(list.to_owned()))
    }

    /// The list, as ssh config's `Ciphers` takes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `ssh_ciphers`: `auto`, `openssh`, or a [`CipherList`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SshCiphers {
    /// AES-GCM first where this host's CPU has AES instructions, else OpenSSH's order.
    #[default]
    Auto,
    /// OpenSSH's own order (chacha20-poly1305 first).
    OpenSsh,
    /// This list, unless the ssh config sets `Ciphers` for the host.
    List(CipherList),
}

impl TryFrom<String> for SshCiphers {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(SshCiphers::Auto),
            "openssh" => Ok(SshCiphers::OpenSsh),
            list => CipherList::parse(list).map(SshCiphers::List).ok_or_else(|| {
                format!(
                    "ssh_ciphers = `{s}`: use `auto`, `openssh`, or cipher names separated by commas (e.g. `^aes128-gcm@openssh.com,aes256-gcm@openssh.com`)"
                )
            }),
        }
    }
}

impl From<SshCiphers> for String {
    fn from(c: SshCiphers) -> String {
        c.to_string()
    }
}

impl fmt::Display for SshCiphers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshCiphers::Auto => f.write_str("auto"),
            SshCiphers::OpenSsh => f.write_str("openssh"),
            SshCiphers::List(l) => f.write_str(l.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked() {
        let parse = |s: &str| SshCiphers::try_from(s.to_owned());
        assert_eq!(parse("auto"), Ok(SshCiphers::Auto));
        assert_eq!(parse("openssh"), Ok(SshCiphers::OpenSsh));
        assert_eq!(
            parse("^aes128-gcm@openssh.com,aes256-gcm@openssh.com"),
            Ok(SshCiphers::List(CipherList::aes_gcm_first()))
        );
        assert!(parse("aes256-ctr").is_ok());
        assert!(parse("-3des-cbc").is_ok());
        for bad in [
            "",
            "^",
            "aes128-ctr,,aes256-ctr",
            "aes128-ctr\nProxyCommand x",
            "aes 1",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("ssh_ciphers"), "{e}");
        }
    }
}
