//! The allow-list itself: which characters of a piece of host text may be
//! shown. A piece is a string literal's content, a comment, or a line of a
//! configuration file. Every character starts out unknown; role tokens,
//! syntax and the shapes known not to be secret are marked shown; every
//! other word is masked, and a run of masked words joined by punctuation
//! becomes one `****`. Some parts are masked whatever they hold (forced):
//! the user-info, query values and fragment of every URL.

use crate::model::tokens;

/// What becomes of one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum St {
    /// Not decided: a word here is masked, punctuation is kept.
    Unknown,
    Show,
    /// Masked whatever it is.
    Force,
}

/// What else a kind of text may show besides role tokens.
#[derive(Debug, Clone, Copy, Default)]
pub struct Opts<'a> {
    /// Words shown as they are (keywords, names the file defines).
    pub vocab: &'a [&'a str],
    /// Match `vocab` ignoring ASCII case.
    pub vocab_nocase: bool,
    /// Absolute paths are shown.
    pub paths: bool,
    /// Numbers (with an optional unit such as `5s`, `10k`) are shown.
    pub numbers: bool,
    /// `{name}` fields of an f-string are code: their names are shown.
    pub fstring: bool,
    /// `name=` before a value is shown (the value is not).
    pub keys: bool,
}

/// A character that continues a word (as in `model::tokens`).
pub fn is_word(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Whether a separator between two masked words is swallowed into one
/// `****`: punctuation is, blanks, quotes and line ends are not.
fn absorbable(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
}

/// The role tokens, indexed once for the many pieces of one file.
pub struct Roles<'a> {
    list: &'a [String],
    set: tokens::NameSet<'a>,
}

impl<'a> Roles<'a> {
    pub fn new(list: &'a [String]) -> Roles<'a> {
        Roles {
            list,
            set: tokens::NameSet::new(list),
        }
    }
}

/// Decides every byte of `s`. `allowed` are the role tokens.
pub fn classify(s: &str, allowed: &[String], o: &Opts) -> Vec<St> {
    classify_with(s, &Roles::new(allowed), o)
}

/// [`classify`] with the role tokens already indexed: what a file's many
/// literals, comments or lines use.
pub fn classify_with(s: &str, roles: &Roles, o: &Opts) -> Vec<St> {
    let mut st = vec![St::Unknown; s.len()];
    let show = |st: &mut Vec<St>, r: std::ops::Range<usize>| {
        for b in &mut st[r] {
            if *b == St::Unknown {
                *b = St::Show;
            }
        }
    };
    for r in roles.set.find_all(s) {
        show(&mut st, r);
    }
    let in_urls = urls(s, &mut st, roles.list);
    if o.fstring {
        fstring_fields(s, &mut st);
    }
    let words = words(s);
    for (k, w) in words.iter().enumerate() {
        let text = &s[w.clone()];
        let after = s[w.end..].chars().next();
        let before = s[..w.start].chars().next_back();
        let shown =
            (o.keys && after == Some('=') && !s[w.end..].starts_with("==") && is_identifier(text))
                || in_vocab(text, o)
                || is_ipv4(text)
                || text == "localhost"
                || (o.numbers && is_number_with_unit(text))
                || (text.bytes().all(|b| b.is_ascii_digit())
                    && (text.len() <= 3
                        || (text.len() <= 5
                            && before == Some(':')
                            && k > 0
                            && st[words[k - 1].start] == St::Show
                            && s[words[k - 1].end..w.start] == *":")));
        if shown {
            show(&mut st, w.clone());
            if o.keys && after == Some('=') && is_identifier(text) {
                show(&mut st, w.end..w.end + 1);
            }
        }
    }
    if o.paths {
        abs_paths(s, &mut st, &in_urls);
    }
    // A word is one thing: shown only if it is shown from its first byte to
    // its last, masked (forced) if any byte of it is forced.
    for w in &words {
        let any_force = st[w.clone()].contains(&St::Force);
        let all_show = st[w.clone()].iter().all(|b| *b == St::Show);
        let v = if any_force {
            St::Force
        } else if all_show {
            St::Show
        } else {
            St::Unknown
        };
        for b in &mut st[w.clone()] {
            *b = v;
        }
        // The dots ending a shown word's sentence are shown with it.
        if v == St::Show {
            let dots = s[w.end..].len() - s[w.end..].trim_start_matches('.').len();
            for b in &mut st[w.end..w.end + dots] {
                if *b == St::Unknown {
                    *b = St::Show;
                }
            }
        }
    }
    st
}

fn in_vocab(w: &str, o: &Opts) -> bool {
    let hit = |x: &str| {
        o.vocab.iter().any(|v| {
            if o.vocab_nocase {
                v.eq_ignore_ascii_case(x)
            } else {
                *v == x
            }
        })
    };
    !o.vocab.is_empty() && (hit(w) || (w.contains('.') && w.split('.').all(hit)))
}

/// Byte ranges of the words of `s`.
pub fn words(s: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in s.char_indices() {
        match (is_word(c), start) {
            (true, None) => start = Some(i),
            (false, Some(b)) => {
                out.push(b..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(b) = start {
        out.push(b..s.len());
    }
    // A dot ending a word ends the sentence (`… of rdm-invenio-ui-green.`),
    // it is not part of the word.
    out.into_iter()
        .filter_map(|r| {
            let end = r.start + s[r.clone()].trim_end_matches('.').len();
            (end > r.start).then_some(r.start..end)
        })
        .collect()
}

pub fn is_identifier(w: &str) -> bool {
    let mut cs = w.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && w.len() <= 64
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

fn is_ipv4(w: &str) -> bool {
    let parts: Vec<&str> = w.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `300`, `5s`, `100ms`, `10k`, `2.5`: configuration numbers.
fn is_number_with_unit(w: &str) -> bool {
    let digits = w
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    digits > 0
        && w.as_bytes()[0].is_ascii_digit()
        && digits <= 12
        && matches!(
            &w[digits..],
            "" | "ms" | "us" | "s" | "m" | "h" | "d" | "k" | "K" | "m%" | "M" | "G" | "g"
        )
}

/// Absolute paths (`/var/run/x.sock`) where a word may start: shown whole.
fn abs_paths(s: &str, st: &mut [St], urls: &[std::ops::Range<usize>]) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // A URL's parts are the URL's business.
        if let Some(u) = urls.iter().find(|u| u.start <= i && i < u.end) {
            i = u.end;
            continue;
        }
        // A path starts a word, or follows a role token (`host/path` routes).
        let starts = b[i] == b'/'
            && (i == 0
                || matches!(b[i - 1], b' ' | b'\t' | b'"' | b'\'' | b'=' | b',' | b'(')
                || (st[i - 1] == St::Show && is_word(char::from(b[i - 1]))))
            && b.get(i + 1).is_some_and(|c| *c != b'/');
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len()
            && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'/' | b'.' | b'_' | b'-' | b'+'))
        {
            j += 1;
        }
        if j > i + 1 && !s[i..j].contains("//") && st[i..j].iter().all(|x| *x != St::Force) {
            for x in &mut st[i..j] {
                *x = St::Show;
            }
        }
        i = j.max(i + 1);
    }
}

/// Inside `{…}` of an f-string: names and operators are code; a quoted
/// literal inside is masked whole.
fn fstring_fields(s: &str, st: &mut [St]) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' && b.get(i + 1) == Some(&b'{') {
            i += 2;
            continue;
        }
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        let Some(len) = s[i..].find('}') else { break };
        let end = i + len;
        let mut quote: Option<u8> = None;
        for k in i..=end {
            let c = b[k];
            match quote {
                Some(q) => {
                    st[k] = St::Force;
                    if c == q {
                        quote = None;
                    }
                }
                None if c == b'"' || c == b'\'' => {
                    quote = Some(c);
                    st[k] = St::Force;
                }
                None if st[k] == St::Unknown
                    && (c.is_ascii_alphanumeric()
                        || matches!(
                            c,
                            b'_' | b'.' | b'{' | b'}' | b'[' | b']' | b'(' | b')' | b'!' | b':'
                        )) =>
                {
                    // A digit-led word inside a field is a literal: masked.
                    st[k] = St::Show;
                }
                None => {}
            }
        }
        // A number literal in a field (`{12345}`) is data, not a name.
        for w in words(&s[i..=end]) {
            let w = i + w.start..i + w.end;
            if s.as_bytes()[w.start].is_ascii_digit() {
                for x in &mut st[w] {
                    *x = St::Force;
                }
            }
        }
        i = end + 1;
    }
}

/// URLs: the scheme, `://`, a host that is a role token or an address, the
/// port, the path as far as it is known not to be secret; user-info, query
/// values and fragment masked whatever they hold.
fn urls(s: &str, st: &mut [St], allowed: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(i) = s[from..].find("://") {
        let sep = from + i;
        from = sep + 3;
        let scheme_start = s[..sep]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
            .last()
            .map_or(sep, |(k, _)| k);
        let scheme = &s[scheme_start..sep];
        if scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        {
            for x in &mut st[scheme_start..sep + 3] {
                if *x == St::Unknown {
                    *x = St::Show;
                }
            }
        }
        let start = sep + 3;
        let rest = &s[start..];
        let end = start
            + rest
                .find(|c: char| matches!(c, '"' | '\'' | '`') || c.is_whitespace())
                .unwrap_or(rest.len());
        let token = &s[start..end];
        spans.push(scheme_start..end);
        // The user-info ends at the last `@` before the path (a password
        // may hold `/`, `?`, `#` or `@`; masking too much is the safe way).
        let host_from = match token.rfind('@') {
            Some(at) => {
                for x in &mut st[start..start + at] {
                    *x = St::Force;
                }
                st[start + at] = St::Show;
                start + at + 1
            }
            None => start,
        };
        let host_end = s[host_from..end]
            .find(['/', '?', '#'])
            .map_or(end, |k| host_from + k);
        // host[:port]
        let hostport = &s[host_from..host_end];
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p))
                if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() && p.len() <= 5 =>
            {
                (h, Some(p))
            }
            _ => (hostport, None),
        };
        if allowed.iter().any(|a| a == host) || is_ipv4(host) || host == "localhost" {
            mark(st, host_from..host_from + host.len(), St::Show);
        }
        if port.is_some() && !host.is_empty() {
            mark(st, host_from + host.len()..host_end, St::Show);
        }
        // Path: database names, vhosts and redis indexes of service URLs;
        // plain lowercase words of web URLs.
        let web = matches!(
            scheme.to_ascii_lowercase().as_str(),
            "http" | "https" | "ws" | "wss" | "ftp"
        );
        let path_end = s[host_end..end]
            .find(['?', '#'])
            .map_or(end, |k| host_end + k);
        let mut k = host_end;
        while k < path_end {
            let seg_end = s[k + 1..path_end].find('/').map_or(path_end, |q| k + 1 + q);
            st[k] = if st[k] == St::Unknown {
                St::Show
            } else {
                st[k]
            };
            let seg = &s[k + 1..seg_end];
            let ok = if web {
                !seg.is_empty()
                    && seg.len() <= 16
                    && seg.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
            } else {
                (is_identifier(seg) && seg.len() <= 63)
                    || (seg.len() <= 3 && seg.bytes().all(|b| b.is_ascii_digit()))
            };
            if ok {
                mark(st, k + 1..seg_end, St::Show);
            }
            k = seg_end;
        }
        // Query: keys shown, values forced; fragment forced.
        if path_end < end {
            let (q_end, frag) = match s[path_end..end].find('#') {
                Some(f) if s.as_bytes()[path_end] == b'?' => (path_end + f, Some(path_end + f)),
                Some(f) => (path_end + f, Some(path_end + f)),
                None => (end, None),
            };
            if s.as_bytes()[path_end] == b'?' {
                st[path_end] = St::Show;
                let mut p = path_end + 1;
                while p < q_end {
                    let pe = s[p..q_end].find(['&', ';']).map_or(q_end, |x| p + x);
                    match s[p..pe].find('=') {
                        Some(eq) => {
                            if is_identifier(&s[p..p + eq]) {
                                mark(st, p..p + eq + 1, St::Show);
                            }
                            for x in &mut st[p + eq + 1..pe] {
                                *x = St::Force;
                            }
                        }
                        None => {
                            for x in &mut st[p..pe] {
                                *x = St::Force;
                            }
                        }
                    }
                    if pe < q_end {
                        st[pe] = St::Show;
                    }
                    p = pe + 1;
                }
            }
            if let Some(f) = frag {
                for x in &mut st[f..end] {
                    *x = St::Force;
                }
            }
        }
    }
    spans
}

fn mark(st: &mut [St], r: std::ops::Range<usize>, v: St) {
    for x in &mut st[r] {
        if *x == St::Unknown {
            *x = v;
        }
    }
}

/// Renders `s` by its decisions: shown bytes as they are, punctuation kept,
/// each run of masked words (with the punctuation between them) as one
/// `****`. Line ends are always kept. Returns the text and the original
/// text of every masked run.
pub fn render(s: &str, st: &[St]) -> (String, Vec<String>) {
    let mut out = String::with_capacity(s.len());
    let mut masked = Vec::new();
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let hidden = |k: usize| -> bool {
        let (i, c) = chars[k];
        match st[i] {
            St::Force => c != '\n',
            St::Unknown => is_word(c),
            St::Show => false,
        }
    };
    let mut k = 0;
    while k < chars.len() {
        if !hidden(k) {
            out.push(chars[k].1);
            k += 1;
            continue;
        }
        // A masked run: hidden chars, and absorbable separators followed by
        // more hidden chars.
        let from = chars[k].0;
        let mut last = k;
        let mut j = k + 1;
        while j < chars.len() {
            if hidden(j) {
                last = j;
                j += 1;
                continue;
            }
            let (_, c) = chars[j];
            if st[chars[j].0] != St::Show && absorbable(c) && c != '\n' {
                j += 1;
                continue;
            }
            break;
        }
        let to = chars.get(last + 1).map_or(s.len(), |x| x.0);
        out.push_str(super::MASK);
        masked.push(s[from..to].to_string());
        k = last + 1;
    }
    (out, masked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str, allowed: &[&str], o: &Opts) -> String {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        render(s, &classify(s, &allowed, o)).0
    }

    #[test]
    fn urls_show_roles_and_mask_the_rest() {
        let o = Opts::default();
        assert_eq!(
            m(
                "postgresql+psycopg2://invenio:Vq7-x@rdm-postgresql-1:5432/invenio",
                &["rdm-postgresql-1"],
                &o
            ),
            "postgresql+psycopg2://****@rdm-postgresql-1:5432/invenio"
        );
        assert_eq!(
            m("redis://:p@ss@rdm-redis:6379/0", &["rdm-redis"], &o),
            "redis://****@rdm-redis:6379/0"
        );
        assert_eq!(
            m("redis://other-host:6379/0", &[], &o),
            "redis://****:6379/0"
        );
        assert_eq!(
            m("https://4f2a9c@o1.ingest.example.io/12345", &[], &o),
            "https://****@****/****"
        );
        assert_eq!(
            m(
                "postgresql://rdm-postgresql-1/invenio?sslmode=require&password=S3cr3t",
                &["rdm-postgresql-1"],
                &o
            ),
            "postgresql://rdm-postgresql-1/invenio?sslmode=****&password=****"
        );
        assert_eq!(
            m("https://data.ae.ic.ac.uk/api", &["data.ae.ic.ac.uk"], &o),
            "https://data.ae.ic.ac.uk/api"
        );
        assert_eq!(
            m("https://hooks.example.com/services/T0/B0/XyZ9", &[], &o),
            "https://****/services/****/****/****"
        );
    }

    #[test]
    fn a_role_token_in_user_info_is_still_masked() {
        assert_eq!(
            m(
                "amqp://rdm-rabbitmq:pw@rdm-rabbitmq:5672/1",
                &["rdm-rabbitmq"],
                &Opts::default()
            ),
            "amqp://****@rdm-rabbitmq:5672/1"
        );
    }

    #[test]
    fn words_masked_unless_role_or_syntax() {
        let o = Opts {
            keys: true,
            ..Opts::default()
        };
        assert_eq!(
            m(
                "(&(objectclass=posixGroup)(cn=acc-data-repo)(memberUid={u}))",
                &["acc-data-repo"],
                &o
            ),
            "(&(objectclass=****)(cn=acc-data-repo)(memberUid={****}))"
        );
        assert_eq!(m("AE Data Repository", &[], &o), "**** **** ****");
        assert_eq!(m("p@ss:w/rd!x", &[], &o), "****");
        assert_eq!(
            m("rdm-opensearch-d1:9200", &["rdm-opensearch-d1"], &o),
            "rdm-opensearch-d1:9200"
        );
        assert_eq!(m("other:9200", &[], &o), "****");
        assert_eq!(m("127.0.0.1", &[], &o), "127.0.0.1");
        assert_eq!(m("acc-data-repo-dev", &["acc-data-repo"], &o), "****");
    }

    #[test]
    fn fstring_fields_are_code_but_their_literals_are_not() {
        let o = Opts {
            fstring: true,
            ..Opts::default()
        };
        assert_eq!(m("{u} and {x['k']}", &[], &o), "{u} **** {x[****]}");
        assert_eq!(m("{'hunter2'}", &[], &o), "{****}");
    }

    #[test]
    fn a_url_is_not_a_path() {
        let o = Opts {
            paths: true,
            ..Opts::default()
        };
        assert_eq!(
            m("https://hooks.example.com/services/T0X/B0X/hook9", &[], &o),
            "https://****/services/****/****/****"
        );
        assert_eq!(m("see /var/log/x.log", &[], &o), "**** /var/log/x.log");
    }

    #[test]
    fn paths_and_numbers_where_allowed() {
        let o = Opts {
            paths: true,
            numbers: true,
            ..Opts::default()
        };
        assert_eq!(
            m("/run/haproxy/admin.sock 5s", &[], &o),
            "/run/haproxy/admin.sock 5s"
        );
        assert_eq!(m("X-Token 8f14e45", &[], &o), "**** ****");
    }

    #[test]
    fn line_ends_survive_a_masked_run() {
        let (t, runs) = render("ab\ncd", &[St::Force; 5]);
        assert_eq!(t, "****\n****");
        assert_eq!(runs, vec!["ab".to_string(), "cd".to_string()]);
    }
}
