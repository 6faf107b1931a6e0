//! Free text: bgswap's own sentences with host text inside them (errors,
//! notes, probe evidence, log lines). Its words are shown, except what is
//! known to be secret: every value masked in a file bgswap has read (learned
//! as it masked them), the user-info, query values and fragment of any URL,
//! HAProxy's credential positions, and values given to secret-named keys.

use super::content::{classify, Opts, St};
use super::MASK;

/// Masks `text`; `learned` are secret values, longest first.
pub fn mask(text: &str, learned: &[String]) -> String {
    let mut s = text.to_string();
    for secret in learned {
        if s.contains(secret.as_str()) {
            s = s.replace(secret.as_str(), MASK);
        }
    }
    let forced = forced(&s);
    let mut out = String::with_capacity(s.len());
    let mut k = 0;
    let b = s.as_bytes();
    while k < b.len() {
        if forced[k] {
            let mut j = k;
            while j < b.len() && forced[j] {
                j += 1;
            }
            // Keep line ends inside a forced run.
            for (n, part) in s[k..j].split('\n').enumerate() {
                if n > 0 {
                    out.push('\n');
                }
                if !part.is_empty() {
                    out.push_str(MASK);
                }
            }
            k = j;
        } else {
            let ch = s[k..].chars().next().unwrap_or(' ');
            out.push(ch);
            k += ch.len_utf8().max(1);
        }
    }
    out
}

/// Bytes masked in free text whatever they are.
fn forced(s: &str) -> Vec<bool> {
    let mut f = vec![false; s.len()];
    // URLs: what the allow-list forces (user-info, query values, fragment).
    if s.contains("://") {
        let st = classify(s, &[], &Opts::default());
        for (i, x) in st.iter().enumerate() {
            if *x == St::Force {
                f[i] = true;
            }
        }
    }
    // `stats auth user:pass`, `password X`, `insecure-password X`, and
    // `SECRET_NAME=value`, `"secret_name": "value"`.
    let words: Vec<(usize, &str)> = split_blank(s);
    for (n, &(at, w)) in words.iter().enumerate() {
        let prev = |k: usize| n.checked_sub(k).map(|i| words[i].1);
        let credential = (prev(2) == Some("stats") && prev(1) == Some("auth"))
            || matches!(prev(1), Some("password" | "insecure-password"));
        if credential {
            f[at..at + w.len()].fill(true);
            continue;
        }
        // `KEY=value`, and `"key": value` as JSON and Python dicts write it.
        let quoted = w
            .trim_start_matches(['{', '(', '[', ','])
            .starts_with(['"', '\'']);
        let bare = w.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | '{' | '(' | '['));
        let sep = match bare.find('=') {
            Some(eq) => Some(eq),
            None if quoted => bare.find(':'),
            None => None,
        };
        if let Some(eq) = sep {
            let key = bare[..eq].trim_matches(|c: char| matches!(c, '"' | '\''));
            if !super::content::is_identifier(key) || !super::masked_by_name(key) {
                continue;
            }
            let value_start = at + (bare.as_ptr() as usize - w.as_ptr() as usize) + eq + 1;
            if value_start < at + w.len() {
                f[value_start..at + w.len()].fill(true);
            } else if let Some(&(a2, w2)) = words.get(n + 1) {
                // `"password": "value"`: the value is the next word.
                f[a2..a2 + w2.len()].fill(true);
            }
        }
    }
    f
}

fn split_blank(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in s.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(b)) => {
                out.push((b, &s[b..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(b) = start {
        out.push((b, &s[b..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_values_and_credential_shapes() {
        let learned = vec!["Vq7-prod-Pg-9xL".to_string()];
        assert_eq!(
            mask("haproxy: line 12: unknown 'Vq7-prod-Pg-9xL'", &learned),
            "haproxy: line 12: unknown '****'"
        );
        assert_eq!(
            mask("cannot reach redis://u:p4ss@rdm-redis:6379/0 now", &[]),
            "cannot reach redis://****@rdm-redis:6379/0 now"
        );
        assert_eq!(mask("stats auth admin:pw1 x", &[]), "stats auth **** x");
        assert_eq!(mask("DB_PASSWORD=abc9 ok", &[]), "DB_PASSWORD=**** ok");
        assert_eq!(
            mask("{\"bind_password\": \"xy9\"}", &[]),
            "{\"bind_password\": ****"
        );
        assert_eq!(mask("the units are active", &[]), "the units are active");
        assert_eq!(
            mask(
                "execute does not take --accept-new-host-key: A switchover",
                &[]
            ),
            "execute does not take --accept-new-host-key: A switchover"
        );
    }
}
