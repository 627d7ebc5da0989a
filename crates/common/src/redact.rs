//! Database URLs without their secrets, for logs, errors and status output.
//!
//! A URL may carry a password in two places: `scheme://user:password@host/…` and a query
//! parameter (`?password=…`, `sslpassword=…`, libpq's `passfile` is a path and stays). Both
//! are replaced by `***`; everything else is kept so the admin can still tell which database
//! is meant.

/// Query parameters whose value is a secret (compared without case).
const SECRET_PARAMS: [&str; 4] = ["password", "sslpassword", "pass", "pwd"];

/// `url` with every password in it replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = redact_userinfo(head);
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s)) => {
                    format!("{k}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `scheme://user:password@rest` as `scheme://user:***@rest`.
fn redact_userinfo(head: &str) -> String {
    let Some(s) = head.find("://") else {
        return head.to_owned();
    };
    let after = &head[s + 3..];
    // the authority ends at the first `/`; its user info at its last `@`
    let authority_end = after.find('/').unwrap_or(after.len());
    let authority = &after[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let creds = &authority[..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &head[..s + 3], &creds[..c], &after[at..]),
                None => head.to_owned(),
            }
        }
        None => head.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_in_user_info_and_in_the_query_are_hidden() {
        for (url, shown) in [
            (
                "postgres://biomero:secret@db:5432/x",
                "postgres://biomero:***@db:5432/x",
            ),
            (
                "postgres://biomero:p@ss@db/x",
                "postgres://biomero:***@db/x",
            ),
            (
                "postgresql://db/x?user=u&password=hunter2&sslmode=require",
                "postgresql://db/x?user=u&password=***&sslmode=require",
            ),
            (
                "postgres://u@db/x?PassWord=a&sslpassword=b",
                "postgres://u@db/x?PassWord=***&sslpassword=***",
            ),
            ("sqlite:///var/lib/q.sqlite", "sqlite:///var/lib/q.sqlite"),
            (
                "sqlite:///var/lib/q.sqlite?mode=rwc",
                "sqlite:///var/lib/q.sqlite?mode=rwc",
            ),
            ("postgres://u@db/x", "postgres://u@db/x"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn no_secret_survives_any_placement() {
        let secret = "S3cr3t-V4lue";
        for url in [
            format!("postgres://u:{secret}@h/d"),
            format!("postgres://u:{secret}@h:5/d?sslmode=disable"),
            format!("postgres://h/d?password={secret}"),
            format!("postgres://h/d?a=1&password={secret}&b=2"),
            format!("postgresql+psycopg2://u:{secret}@h/d"),
        ] {
            assert!(!redact_url(&url).contains(secret), "{url}");
        }
    }
}
