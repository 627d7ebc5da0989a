//! The cipher the peers' SSH masters use: the one the daemon's master asks for with its
//! default `ssh_ciphers = "auto"`, so ours and the peers are measured over the same cipher
//! (included with `#[path]`: a bench has no library).

/// `-o Ciphers=…` for a peer's `ssh`/`sftp`, or nothing where the daemon keeps OpenSSH's order.
pub(crate) fn peer_cipher_options() -> Vec<String> {
    stage_cluster::ssh_ciphers::resolve(&stage_config::ciphers::SshCiphers::Auto)
        .map(|list| vec!["-o".to_owned(), format!("Ciphers={}", list.as_str())])
        .unwrap_or_default()
}
