//! The job's log (`~/omero-<id>.log`): its tail as a failure reason, and the
//! last `NN%` in it as progress (what BIOMERO shows).

use crate::error::Result;
use crate::layout::Layout;
use crate::ssh::Remote;

/// The last `lines` lines of the job's log (empty when there is none yet).
pub async fn tail(r: &Remote, job_id: u64, lines: u32) -> Result<String> {
    let o = r
        .output(
            "tail",
            &["-n".into(), lines.to_string(), Layout::job_log(job_id)],
        )
        .await?;
    Ok(String::from_utf8_lossy(&o.stdout)
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect())
}

/// The last percentage (`42%`) in a log text.
pub fn progress(text: &str) -> Option<u8> {
    let b = text.as_bytes();
    let mut found = None;
    for (i, &c) in b.iter().enumerate() {
        if c != b'%' {
            continue;
        }
        let mut j = i;
        while j > 0 && b[j - 1].is_ascii_digit() && i - j < 3 {
            j -= 1;
        }
        if j < i
            && let Ok(v) = text[j..i].parse::<u8>()
            && v <= 100
        {
            found = Some(v);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::progress;

    #[test]
    fn progress_is_the_last_percentage() {
        assert_eq!(progress("start\n10%\n 55% done\n"), Some(55));
        assert_eq!(progress("100%"), Some(100));
        assert_eq!(progress("no numbers"), None);
        assert_eq!(progress("250% oops"), None);
    }
}
