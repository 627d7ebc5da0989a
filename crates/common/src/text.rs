//! Output for people: at most 100 columns unless the terminal is wider, long
//! sentences wrapped at word boundaries, long values shortened with a pointer
//! to the full form.

use std::io::IsTerminal;

/// The width output is made for when it does not go to a terminal.
pub const OUTPUT_WIDTH: u16 = 100;

/// The width to fit tables and text into: the terminal's when stdout is one, else 100.
pub fn output_width() -> u16 {
    if std::io::stdout().is_terminal()
        && let Some(w) = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<u16>().ok())
    {
        return w.max(40);
    }
    OUTPUT_WIDTH
}

/// `text` wrapped at word boundaries into lines of at most `width` characters
/// (a word longer than that stays whole on its own line), each after `indent`.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let needed = indent.chars().count() + line.chars().count() + 1 + word.chars().count();
        if !line.is_empty() && needed > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `text` cut to at most `max` characters, ending in `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_word_and_the_width() {
        let text = "the sample's own `cells` labels are the ground truth; each kept folder holds the returned labels";
        let w = wrap(text, 40, "  ");
        assert!(w.lines().all(|l| l.chars().count() <= 40), "{w}");
        assert_eq!(
            w.split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
        assert_eq!(
            wrap("a-very-long-word-indeed", 5, ""),
            "a-very-long-word-indeed\n"
        );
    }

    #[test]
    fn shortening_says_it_cut() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
        assert_eq!(shorten("ééééé", 3).chars().count(), 3);
    }
}
