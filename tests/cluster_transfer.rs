//! The cluster crate against the local sshd and Slurm: uploads that resume and
//! send only what is missing or different, files of every size around the
//! stream's boundaries arriving byte for byte, transfers that survive a cut SSH
//! master, downloads that refuse empty folders and symlinks, connection
//! errors that name the cause, folders without permission, and many jobs
//! followed with one query per poll.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stage_cluster::slurm::status::{JobState, StatusQuery, statuses};
use stage_cluster::slurm::submit::{JobSpec, submit};
use stage_cluster::slurm::watch::Watcher;
use stage_cluster::transfer::{OutputLimits, download, listing, upload};
use stage_cluster::{ClusterError, Remote, SshTarget};
use stage_common::meter::Meter;
use stage_tests::cluster::{Lab, kill_ssh_master, lab};
use stage_tests::drills::Drill;

fn remote(lab: &Lab, control: &Path, host: &str, config: Option<&Path>) -> Remote {
    Remote::new(SshTarget {
        host: host.to_owned(),
        config_file: Some(config.unwrap_or(&lab.ssh_config).to_path_buf()),
        control_dir: control.to_path_buf(),
        connect_timeout: Duration::from_secs(10),
        // the daemon's default: AES-GCM first where the CPU has AES
        ciphers: stage_cluster::ssh_ciphers::resolve(&stage_config::ciphers::SshCiphers::Auto),
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A tree of `n` files of varied sizes in nested folders, with awkward names.
fn tree(root: &Path, n: usize, size: usize) {
    for i in 0..n {
        let dir = root.join(format!("plate.zarr/{}/{}", i % 7, i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let len = size + (i * 37) % 1000;
        let body: Vec<u8> = (0..len).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
        std::fs::write(dir.join(format!("c{i}")), body).unwrap();
    }
    std::fs::write(root.join("it's a \"file\" $(x).txt"), b"awkward name").unwrap();
}

fn same_trees(a: &Path, b: &Path) {
    let la = stage_cluster::transfer::listing::local(a).unwrap();
    let lb = stage_cluster::transfer::listing::local(b).unwrap();
    assert_eq!(
        la.files,
        lb.files,
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

#[test]
fn an_interrupted_upload_resumes_sending_only_what_is_missing_or_different() {
    let lab = lab();
    let (rel, abs) = lab.folder("resume");
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    tree(&full, 300, 2000);
    // a first, partial upload: a third of the files
    let part = tmp.path().join("part");
    for e in walk(&full).iter().step_by(3) {
        let rel = e.strip_prefix(&full).unwrap();
        std::fs::create_dir_all(part.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(e, part.join(rel)).unwrap();
    }
    let sent_first = walk(&part).len() as u64;
    let r = remote(&lab, &tmp.path().join("ctl"), "slurm", None);
    let target = format!("{rel}/data/in");
    rt().block_on(async {
        let first = upload::upload(&r, &part, &target).await.unwrap();
        assert_eq!(first.files_sent, sent_first);
        // damage one file without changing its size, and leave a stray file behind
        let victim = walk(&abs.join("data/in"))[0].clone();
        let mut body = std::fs::read(&victim).unwrap();
        body[0] ^= 0xff;
        std::fs::write(&victim, body).unwrap();
        std::fs::write(abs.join("data/in/stray.tmp"), b"left over").unwrap();
        // what is sent is counted as it goes: the second upload's meter ends at what it sent
        let meter = Arc::new(Meter::new());
        let second = upload::upload_metered(&r, &full, &target, meter.clone())
            .await
            .unwrap();
        let m = meter.read();
        assert_eq!(
            (m.bytes_done, m.files_done, m.bytes_total, m.files_total),
            (
                second.bytes_sent,
                second.files_sent,
                second.bytes_sent,
                second.files_sent
            )
        );
        let total = walk(&full).len() as u64;
        assert_eq!(second.files, total);
        assert_eq!(second.files_sent, total - sent_first + 1, "{second:?}");
        // nothing left to send the third time
        let third = upload::upload(&r, &full, &target).await.unwrap();
        assert_eq!(third.files_sent, 0, "{third:?}");
    });
    assert!(!abs.join("data/in/stray.tmp").exists());
    same_trees(&full, &abs.join("data/in"));
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn files_spliced_or_gathered_arrive_byte_for_byte_whatever_their_size_and_name() {
    let lab = lab();
    let (rel, abs) = lab.folder("sizes");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // around the tar block (512), the size below which files are gathered (64 KiB) and the
    // splice piece (256 KiB); one name past tar's 100 bytes (a GNU long-name entry first)
    let long = format!("{}/{}", "d".repeat(90), "long-named-".repeat(8));
    let sizes = [
        0usize, 1, 511, 512, 513, 65_535, 65_536, 65_537, 262_144, 262_145, 1_048_579,
    ];
    for (i, len) in sizes.iter().enumerate() {
        let name = if i == 7 {
            long.clone()
        } else {
            format!("f/{len}.bin")
        };
        let path = src.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let body: Vec<u8> = (0..*len).map(|j| ((j * 13 + i) % 253) as u8).collect();
        std::fs::write(path, body).unwrap();
    }
    let r = remote(&lab, &tmp.path().join("ctl"), "slurm", None);
    let report = rt()
        .block_on(upload::upload(&r, &src, &format!("{rel}/data/in")))
        .unwrap();
    assert_eq!(report.files_sent, sizes.len() as u64, "{report:?}");
    assert!(abs.join("data/in").join(&long).is_file());
    // every byte compared, not only sizes and sums
    for e in walk(&src) {
        let there = abs.join("data/in").join(e.strip_prefix(&src).unwrap());
        assert!(
            std::fs::read(&e).unwrap() == std::fs::read(&there).unwrap(),
            "{} differs on the cluster",
            e.display()
        );
    }
}

#[test]
fn a_transfer_cut_by_a_dead_ssh_master_resumes_and_verifies() {
    let lab = lab();
    let (rel, abs) = lab.folder("cut");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src, 1500, 40_000);
    let ctl = tmp.path().join("ctl");
    let r = Arc::new(remote(&lab, &ctl, "slurm", None));
    let target = format!("{rel}/data/in");
    let rt = rt();
    // upload, cut
    let cut_up = rt.block_on(async {
        r.run("true", &[]).await.unwrap();
        let task = tokio::spawn({
            let r = r.clone();
            let (src, target) = (src.clone(), target.clone());
            async move { upload::upload(&r, &src, &target).await }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let killed = kill_ssh_master(&ctl);
        (killed, task.await.unwrap())
    });
    assert!(cut_up.0, "no SSH master to kill");
    let e = cut_up
        .1
        .as_ref()
        .expect_err("the upload finished before the cut; make the tree bigger");
    assert!(e.is_transient(), "a cut connection is worth retrying: {e}");
    let mut drill = Drill::new("SSH master killed mid-transfer (upload, download)");
    let resumed = rt.block_on(upload::upload(&r, &src, &target)).unwrap();
    same_trees(&src, &abs.join("data/in"));
    assert_eq!(resumed.files, 1501);
    drill.trial(true);
    // download, cut
    let back = tmp.path().join("back");
    let cut_down = rt.block_on(async {
        let task = tokio::spawn({
            let r = r.clone();
            let (back, target) = (back.clone(), target.clone());
            async move { download::download(&r, &target, &back, &OutputLimits::NONE).await }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        kill_ssh_master(&ctl);
        task.await.unwrap()
    });
    let e = cut_down.expect_err("the download finished before the cut; make the tree bigger");
    assert!(e.is_transient(), "{e}");
    let meter = Arc::new(Meter::new());
    let again = rt
        .block_on(download::download_metered(
            &r,
            &target,
            &back,
            &OutputLimits::NONE,
            meter.clone(),
        ))
        .unwrap();
    same_trees(&src, &back);
    assert_eq!(again.files, 1501);
    // the resumed download counts what it fetched, and only that
    let m = meter.read();
    assert_eq!(
        (m.bytes_done, m.files_done, m.files_total),
        (again.bytes_sent, again.files_sent, again.files_sent)
    );
    drill.trial(true);
}

#[test]
fn downloads_refuse_an_empty_folder_and_symlinks() {
    let lab = lab();
    let (rel, abs) = lab.folder("down");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(abs.join("out")).unwrap();
    lab.chown(&abs);
    let r = remote(&lab, &tmp.path().join("ctl"), "slurm", None);
    let rt = rt();
    let e = rt
        .block_on(download::download(
            &r,
            &format!("{rel}/out"),
            &tmp.path().join("a"),
            &OutputLimits::NONE,
        ))
        .unwrap_err();
    assert!(matches!(e, ClusterError::EmptyOutput(_)), "{e}");
    assert!(e.to_string().contains("wrote nothing"), "{e}");
    std::fs::write(abs.join("out/result.csv"), b"a,b\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", abs.join("out/passwd")).unwrap();
    let e = rt
        .block_on(download::download(
            &r,
            &format!("{rel}/out"),
            &tmp.path().join("b"),
            &OutputLimits::NONE,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("symlinks or special files"), "{e}");
    assert!(!tmp.path().join("b/passwd").exists());
    // hard links: between two names in the folder, the folder's own; to a file elsewhere, not
    std::fs::remove_file(abs.join("out/passwd")).unwrap();
    std::fs::create_dir_all(abs.join("in")).unwrap();
    std::fs::write(abs.join("in/input.tif"), b"pixels").unwrap();
    std::fs::hard_link(abs.join("in/input.tif"), abs.join("out/same as input.tif")).unwrap();
    let elsewhere = tmp.path().join("elsewhere.txt");
    std::fs::write(&elsewhere, b"secret").unwrap();
    std::fs::hard_link(&elsewhere, abs.join("out/copy.txt")).unwrap();
    lab.chown(&abs);
    let linked = rt.block_on(listing::remote_links(&r, &rel)).unwrap();
    assert_eq!(linked.len(), 3, "{linked:?}");
    let outside: Vec<&str> = listing::linked_from_outside(&linked, "out")
        .into_iter()
        .map(|l| l.path.as_str())
        .collect();
    assert_eq!(outside, ["out/copy.txt"]);
    std::fs::remove_file(abs.join("out/copy.txt")).unwrap();
    std::fs::remove_file(abs.join("out/same as input.tif")).unwrap();
    // an output beyond the limits is refused from the listing: nothing lands here
    std::fs::write(abs.join("out/big.bin"), vec![7u8; 100_000]).unwrap();
    lab.chown(&abs);
    for (limits, words) in [
        (
            OutputLimits {
                max_bytes: 50_000,
                max_files: 10,
            },
            "max_output_bytes = 50000",
        ),
        (
            OutputLimits {
                max_bytes: u64::MAX,
                max_files: 1,
            },
            "2 files",
        ),
    ] {
        let target = tmp.path().join("c");
        let e = rt
            .block_on(download::download(
                &r,
                &format!("{rel}/out"),
                &target,
                &limits,
            ))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(words) && e.contains("before it is downloaded"),
            "{e}"
        );
        assert!(!target.exists(), "nothing was fetched");
    }
}

/// Every `ssh_ciphers` setting reaches the host through the site's ssh config (its alias
/// is only defined there); a cipher list shows in the config the master is given, and
/// `openssh` writes none.
#[test]
fn every_cipher_setting_connects_through_the_sites_ssh_config() {
    use stage_config::ciphers::{CipherList, SshCiphers};
    let lab = lab();
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let settings = [
        ("auto", SshCiphers::Auto),
        ("openssh", SshCiphers::OpenSsh),
        (
            "list",
            SshCiphers::List(CipherList::parse("aes256-gcm@openssh.com").unwrap()),
        ),
    ];
    for (name, setting) in settings {
        let r = Remote::new(SshTarget {
            host: "slurm".to_owned(),
            config_file: Some(lab.ssh_config.clone()),
            control_dir: tmp.path().join(name),
            connect_timeout: Duration::from_secs(10),
            ciphers: stage_cluster::ssh_ciphers::resolve(&setting),
        });
        let out = rt
            .block_on(r.output("echo", &["connected".to_owned()]))
            .unwrap_or_else(|e| panic!("ssh_ciphers = {name}: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "connected",
            "ssh_ciphers = {name}"
        );
        // the cipher asked for, as the real client reads the config the master was given
        let written = tmp.path().join(name).join("ssh_config");
        if name == "list" {
            let g = std::process::Command::new("ssh")
                .arg("-G")
                .arg("-F")
                .arg(&written)
                .arg("slurm")
                .output()
                .unwrap();
            let g = String::from_utf8_lossy(&g.stdout).into_owned();
            assert!(
                g.lines().any(|l| l == "ciphers aes256-gcm@openssh.com"),
                "{g}"
            );
        }
        if name == "openssh" {
            assert!(
                !written.exists(),
                "no config is written without a preference"
            );
        }
    }
}

#[test]
fn connection_problems_name_their_cause() {
    let lab = lab();
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let try_run = |host: &str, config: Option<&Path>, n: &str| {
        let r = remote(&lab, &tmp.path().join(n), host, config);
        rt.block_on(r.run("true", &[])).unwrap_err()
    };
    // an alias the ssh config does not define resolves as a host name, which does not exist
    let e = try_run("no-such-alias.invalid", None, "a");
    assert!(
        e.to_string().contains("no-such-alias.invalid") && e.to_string().contains("unknown host"),
        "{e}"
    );
    assert!(!e.is_transient(), "{e}");
    // a key the server does not know
    let key = tmp.path().join("stranger");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let cfg = tmp.path().join("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Host slurm\n  HostName 127.0.0.1\n  Port 2222\n  User {}\n  IdentityFile {}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\nHost closed\n  HostName 127.0.0.1\n  Port 1\n  BatchMode yes\n",
            lab.user,
            key.display()
        ),
    )
    .unwrap();
    let e = try_run("slurm", Some(&cfg), "b");
    assert!(e.to_string().contains("key was refused"), "{e}");
    assert!(!e.is_transient(), "{e}");
    // nothing listens: worth retrying later
    let e = try_run("closed", Some(&cfg), "c");
    assert!(
        e.to_string().to_lowercase().contains("connection refused"),
        "{e}"
    );
    assert!(e.is_transient(), "{e}");
}

#[test]
fn a_folder_the_slurm_user_may_not_create_or_write_is_refused_with_the_reason() {
    let lab = lab();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src, 3, 100);
    // owned by root, mode 755: the Slurm user can read but not write
    let ro = lab.dir.join(format!("read-only-{}", std::process::id()));
    std::fs::create_dir_all(&ro).unwrap();
    let r = remote(&lab, &tmp.path().join("ctl"), "slurm", None);
    let e = rt()
        .block_on(upload::upload(
            &r,
            &src,
            &format!("{}/biomero_x/data/in", ro.display()),
        ))
        .unwrap_err();
    assert!(e.to_string().contains("Permission denied"), "{e}");
    assert!(!e.is_transient(), "{e}");
    let _ = std::fs::remove_dir_all(&ro);
}

#[test]
fn many_jobs_are_followed_with_one_query_per_poll() {
    let lab = lab();
    let (rel, abs) = lab.folder("watch");
    lab.script(&abs, "job.sh", "#!/bin/bash\nsleep 2\necho done\n");
    let tmp = tempfile::tempdir().unwrap();
    let r = Arc::new(remote(&lab, &tmp.path().join("ctl"), "slurm", None));
    // Slurm's accounting outlives the test: a name from the process id alone can
    // meet an earlier run's job once the id comes round again, so the temporary
    // folder's random name makes it this run's own
    let run = tmp
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("run")
        .trim_start_matches('.')
        .to_owned();
    let rt = rt();
    rt.block_on(async {
        let mut ids = Vec::new();
        for i in 0..4 {
            let spec = JobSpec {
                name: format!("bst-watch-{}-{run}-{i}", std::process::id()),
                script: format!("{rel}/job.sh"),
                sbatch_args: vec!["--time=00:02:00".into()],
                env: vec![("ROUND".into(), i.to_string())],
                env_file: None,
            };
            let job = submit(&r, &spec, "now-1days").await.unwrap();
            assert!(!job.adopted);
            // the same name again finds the job instead of submitting a second one
            let again = submit(&r, &spec, "now-1days").await.unwrap();
            assert_eq!((again.job_id, again.adopted), (job.job_id, true));
            ids.push(job.job_id);
        }
        let poll = Duration::from_millis(500);
        let w = Watcher::spawn(
            r.clone(),
            StatusQuery {
                since: "now-1days".into(),
                accounting: true,
            },
            poll,
        );
        let started = Instant::now();
        let mut rxs: Vec<_> = ids.iter().map(|id| w.follow(*id)).collect();
        for rx in &mut rxs {
            loop {
                if rx
                    .borrow()
                    .as_ref()
                    .is_some_and(|s| s.state == JobState::Completed)
                {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(90),
                    "jobs did not complete"
                );
                tokio::time::timeout(Duration::from_secs(5), rx.changed())
                    .await
                    .ok();
            }
        }
        let elapsed = started.elapsed();
        // one query per poll interval (plus one per registration), never one per job
        let bound = (elapsed.as_millis() / poll.as_millis()) as u64 + 1 + ids.len() as u64;
        assert!(w.polls() <= bound, "{} polls in {elapsed:?}", w.polls());
        // a job id Slurm never had is `Unknown` (not an error), with and without accounting
        for accounting in [true, false] {
            let q = StatusQuery {
                since: "now-1days".into(),
                accounting,
            };
            let m = statuses(&r, &[987_654_321], &q).await.unwrap();
            assert_eq!(m[&987_654_321].state, JobState::Unknown, "{m:?}");
        }
    });
}

#[test]
fn a_remote_disk_that_fills_fails_the_upload_with_its_reason_and_it_resumes_once_there_is_room() {
    let lab = lab();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src, 6, 400_000);
    // a 1 MiB filesystem on the cluster side, writable by the Slurm user
    let small = lab.dir.join(format!("small-{}", std::process::id()));
    std::fs::create_dir_all(&small).unwrap();
    let mount = |opts: &str| {
        let mut c = std::process::Command::new("mount");
        if opts.starts_with("remount") {
            c.args(["-o", opts]).arg(&small);
        } else {
            c.args(["-t", "tmpfs", "-o", opts, "tmpfs"]).arg(&small);
        }
        assert!(
            c.status().unwrap().success(),
            "mount -o {opts} failed (the test runs as root)"
        );
    };
    mount("size=1m,mode=1777");
    let r = remote(&lab, &tmp.path().join("ctl"), "slurm", None);
    let rt = rt();
    let target = format!("{}/data/in", small.display());
    let e = rt.block_on(upload::upload(&r, &src, &target)).unwrap_err();
    let full = e.to_string();
    // room again: the same upload completes, keeping what had arrived intact
    mount("remount,size=16m");
    let done = rt.block_on(upload::upload(&r, &src, &target));
    let _ = std::process::Command::new("umount").arg(&small).status();
    let _ = std::fs::remove_dir_all(&small);
    assert!(full.contains("No space left on device"), "{full}");
    assert!(
        !e.is_transient(),
        "a full disk needs an admin, not a retry: {full}"
    );
    let done = done.unwrap();
    assert!(
        done.files_sent < done.files,
        "what arrived before the disk filled was sent again: {done:?}"
    );
}

#[test]
fn an_upload_made_while_staging_sends_each_output_as_it_comes_and_stands_until_changed() {
    let lab = lab();
    let (rel, abs) = lab.folder("streamed");
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("in");
    std::fs::create_dir_all(&local).unwrap();
    let r = remote(&lab, &tmp.path().join("ctl"), "slurm", None);
    let target = format!("{rel}/data/in");
    rt().block_on(async {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let meter = Arc::new(Meter::new());
        let sending = {
            let (local, target, meter) = (local.clone(), target.clone(), meter.clone());
            let r = &r;
            async move { upload::upload_streamed(r, &local, rx, &target, meter).await }
        };
        // the "stager": outputs appear one by one, each told once complete; one is a folder
        let staging = async {
            for i in 0..3usize {
                let body: Vec<u8> = (0..200_000 + i * 1000).map(|j| (j % 251) as u8).collect();
                std::fs::write(local.join(format!("field_{i}.tif")), body).unwrap();
                tx.send(format!("field_{i}.tif")).unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tree(&local.join("image.ome.zarr"), 40, 500);
            tx.send("image.ome.zarr".into()).unwrap();
            drop(tx);
        };
        let (sent, ()) = tokio::join!(sending, staging);
        let sent = sent.unwrap();
        let files = walk(&local).len() as u64;
        assert_eq!(sent.report.files, files);
        assert_eq!(sent.report.method, upload::STREAMED);
        // the meter's totals grew with what was told
        let m = meter.read();
        assert_eq!((m.files_done, m.files_total), (files, files));
        same_trees(&local, &abs.join("data/in"));
        // it stands while both sides hold what was sent (a listing by size, nothing resent)
        let stands = upload::confirm_streamed(&r, &local, &target, &sent)
            .await
            .unwrap();
        assert_eq!(stands.as_ref(), Some(&sent.report));
        // a file cut short on the cluster: it no longer stands, and the resuming upload repairs it
        let victim = abs.join("data/in/field_1.tif");
        let body = std::fs::read(&victim).unwrap();
        std::fs::write(&victim, &body[..1000]).unwrap();
        assert_eq!(
            upload::confirm_streamed(&r, &local, &target, &sent)
                .await
                .unwrap(),
            None
        );
        let resumed = upload::upload(&r, &local, &target).await.unwrap();
        assert_eq!(resumed.files_sent, 1, "{resumed:?}");
        same_trees(&local, &abs.join("data/in"));
        // a file added on this side after the stream: it does not stand either
        std::fs::write(local.join("late.txt"), b"late").unwrap();
        assert_eq!(
            upload::confirm_streamed(&r, &local, &target, &sent)
                .await
                .unwrap(),
            None
        );
        // a target that already holds files is left to the resuming upload
        let (_tx, rx) = std::sync::mpsc::channel::<String>();
        let e = upload::upload_streamed(&r, &local, rx, &target, Arc::new(Meter::new()))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("already holds"), "{e}");
    });
}
