//! The local single-node Slurm and sshd that `deploy/local-cluster/slurm-up.sh`
//! starts (as root; `.ci/run` and `scripts/test` run it): where its ssh config,
//! Slurm user and home are, and per-test folders in that home.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The local cluster.
#[derive(Debug, Clone)]
pub struct Lab {
    /// `SLURMLAB_DIR` (default `/tmp/slurmlab`).
    pub dir: PathBuf,
    /// The ssh config with the `slurm` alias.
    pub ssh_config: PathBuf,
    /// The Slurm user.
    pub user: String,
    /// Its home (where relative cluster paths start).
    pub home: PathBuf,
}

/// The running local cluster; panics with what to run when it is not up.
pub fn lab() -> Lab {
    let dir =
        PathBuf::from(std::env::var("SLURMLAB_DIR").unwrap_or_else(|_| "/tmp/slurmlab".into()));
    let ssh_config = dir.join("client/ssh_config");
    let user = std::env::var("SLURMLAB_USER").unwrap_or_else(|_| "slurmuser".into());
    let home = dir.join("home").join(&user);
    assert!(
        ssh_config.exists() && home.exists(),
        "the local Slurm cluster is not set up ({} missing): run `deploy/local-cluster/slurm-up.sh` as root (scripts/test does)",
        ssh_config.display()
    );
    let lab = Lab {
        dir,
        ssh_config,
        user,
        home,
    };
    let o = lab.ssh(&["sinfo", "-h", "-o", "%T"]);
    assert!(
        o.status.success(),
        "the local Slurm cluster does not answer (`ssh slurm sinfo`: {}); run `deploy/local-cluster/slurm-up.sh` as root",
        String::from_utf8_lossy(&o.stderr)
    );
    lab
}

impl Lab {
    /// Runs a command on the cluster as the Slurm user (arguments quoted by the caller's choice of words).
    pub fn ssh(&self, args: &[&str]) -> Output {
        Command::new("ssh")
            .arg("-F")
            .arg(&self.ssh_config)
            .arg("slurm")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ssh: {e}"))
    }

    /// A fresh folder `<home>/<name>-<random>` owned by the Slurm user: (path relative to home, absolute path).
    pub fn folder(&self, name: &str) -> (String, PathBuf) {
        let rel = format!(
            "bst-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let abs = self.home.join(&rel);
        std::fs::create_dir_all(&abs).unwrap_or_else(|e| panic!("{}: {e}", abs.display()));
        self.chown(&abs);
        (rel, abs)
    }

    /// Gives `path` (recursively) to the Slurm user.
    pub fn chown(&self, path: &Path) {
        let ok = Command::new("chown")
            .arg("-R")
            .arg(format!("{0}:{0}", self.user))
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown {} failed", path.display());
    }

    /// Writes an executable job script at `<abs>/<name>` for the Slurm user.
    pub fn script(&self, dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&p, body).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        self.chown(dir);
    }

    /// The `sacct` state of a job (empty when accounting does not know it).
    pub fn sacct_state(&self, job_id: u64) -> String {
        let id = job_id.to_string();
        let o = self.ssh(&["sacct", "-n", "-X", "-P", "-o", "State", "-j", &id]);
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }
}

/// Kills the SSH master whose control socket lives under `control` (a cut connection).
pub fn kill_ssh_master(control: &Path) -> bool {
    Command::new("pkill")
        .args(["-f", &control.display().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}
