//! Making arbitrary text (site error pages, messages) safe for plugin output.

/// One line, no control characters or ANSI escapes, no `|` (it would start
/// perfdata), at most `max` characters (an ellipsis marks a cut).
pub fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 4));
    let mut count = 0;
    let mut last_space = true;
    for c in strip_escapes(s).chars() {
        let c = match c {
            '|' => '/',
            c if c.is_whitespace() || c.is_control() => ' ',
            c => c,
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if count == max {
            out.push('…');
            return out.trim_end().to_string();
        }
        out.push(c);
        count += 1;
    }
    // ARGO turns a literal `\n` into a newline: break the sequence up.
    out.trim_end().replace("\\n", "\\ n")
}

/// Remove ANSI escapes: `ESC [ ... final` sequences and `ESC x` pairs.
pub fn strip_escapes(s: &str) -> String {
    if !s.contains('\u{1b}') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// Multi-line text made safe line by line.
pub fn lines(s: &str, max_line: usize) -> Vec<String> {
    s.lines()
        .map(|l| one_line(l, max_line))
        .filter(|l| !l.is_empty())
        .collect()
}

/// A number without scientific notation, at most 6 decimals, no trailing zeros.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "U".into();
    }
    if v == v.trunc() && v.abs() < 1e18 {
        return format!("{}", v as i64);
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_pipes_and_newlines() {
        assert_eq!(
            one_line("\u{1b}[31mred\u{1b}[0m | x\n  y\r\n\u{7}", 100),
            "red / x y"
        );
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("a\\nb", 10), "a\\ nb");
        assert_eq!(one_line("ünïcödé", 4), "ünïc…");
    }
}
