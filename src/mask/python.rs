//! invenio.cfg (Python) through the allow-list: code (names, operators,
//! short numbers) is shown; every string literal and comment goes through
//! [`content`](super::content), literals joined by `+` or adjacency as one
//! text, so that a URL split across literals is still one URL. Values of
//! secret-named keys are masked whole, role tokens included.

use super::content::{classify_with, render, Opts, Roles, St};
use super::MASK;
use crate::edit::pycfg::{self, PyFile, TokenKind};

/// The masked text and the original text of every masked run; `None` when
/// the text is not Python the tokenizer understands.
pub fn mask(text: &str, allowed: &[String]) -> Option<(String, Vec<String>)> {
    let pf = pycfg::parse(text).ok()?;
    let roles = Roles::new(allowed);
    let tokens = pf.tokens();
    // Every byte of the text: shown unless a decision says otherwise.
    let mut st = vec![St::Show; text.len()];

    // String literals, chained.
    let mut i = 0;
    while i < tokens.len() {
        if !matches!(tokens[i].kind, TokenKind::Str(_)) {
            i += 1;
            continue;
        }
        // An environment variable's name (`os.environ.get("RABBIT_PASSWD")`)
        // is a name, not a value.
        if let TokenKind::Str(b) = &tokens[i].kind {
            if names_env_var(&pf, i) && super::content::is_identifier(&text[b.body.clone()]) {
                i += 1;
                continue;
            }
        }
        // A dict key (`{'http_auth': …}`) is a name; its value is not.
        if let TokenKind::Str(b) = &tokens[i].kind {
            let next_is_colon = tokens
                .get(i + 1)
                .is_some_and(|n| &text[n.span.clone()] == ":");
            if next_is_colon && !b.fstring && super::content::is_identifier(&text[b.body.clone()]) {
                i += 1;
                continue;
            }
        }
        let mut bodies = Vec::new();
        let mut fstring = false;
        let mut j = i;
        while j < tokens.len() {
            match &tokens[j].kind {
                TokenKind::Str(s) => {
                    bodies.push(s.body.clone());
                    fstring |= s.fstring;
                }
                TokenKind::Comment | TokenKind::Continuation => {}
                TokenKind::Op if &text[tokens[j].span.clone()] == "+" => {}
                _ => break,
            }
            j += 1;
        }
        let mut joined = String::new();
        let mut offsets = Vec::new();
        for b in &bodies {
            joined.push_str(&text[b.clone()]);
            offsets.extend(b.clone());
        }
        let o = Opts {
            fstring,
            keys: true,
            paths: true,
            ..Opts::default()
        };
        let decided = classify_with(&joined, &roles, &o);
        for (k, d) in decided.into_iter().enumerate() {
            st[offsets[k]] = d;
        }
        i = j.max(i + 1);
    }

    // Comments: the text after `#`.
    for t in tokens.iter().filter(|t| t.kind == TokenKind::Comment) {
        let body = t.span.start + 1..t.span.end;
        let decided = classify_with(
            &text[body.clone()],
            &roles,
            &Opts {
                paths: true,
                ..Opts::default()
            },
        );
        st[body].copy_from_slice(&decided);
    }

    // Long numbers are data (a PIN, an account number), not syntax.
    for t in tokens.iter().filter(|t| t.kind == TokenKind::Number) {
        if text[t.span.clone()]
            .chars()
            .filter(|c| c.is_ascii_digit())
            .count()
            > 6
        {
            st[t.span.clone()].fill(St::Force);
        }
    }

    // A key-based list adds masking, never removes it.
    for span in secret_values(&pf) {
        st[span].fill(St::Force);
    }

    // Render: shown code verbatim; each literal body and comment by its decisions.
    let mut out = String::with_capacity(text.len());
    let mut runs = Vec::new();
    let mut at = 0;
    let mut regions: Vec<std::ops::Range<usize>> = Vec::new();
    for t in tokens {
        match &t.kind {
            TokenKind::Str(s) => regions.push(s.body.clone()),
            TokenKind::Comment => regions.push(t.span.start + 1..t.span.end),
            TokenKind::Number if st[t.span.start] == St::Force => regions.push(t.span.clone()),
            _ => {}
        }
    }
    for r in regions {
        if r.start < at {
            continue;
        }
        out.push_str(&text[at..r.start]);
        let (m, found) = render(&text[r.clone()], &st[r.clone()]);
        out.push_str(&m);
        runs.extend(found);
        at = r.end;
    }
    out.push_str(&text[at..]);
    Some((out, runs))
}

/// Spans whose whole content is masked because a name says it is secret:
/// the literals and numbers of a secret-named key's value, and a literal
/// passed by a secret name (`dict(bind_password='…')`, `{'secret': '…'}`).
fn secret_values(pf: &PyFile) -> Vec<std::ops::Range<usize>> {
    let text = pf.text();
    let tokens = pf.tokens();
    let mut out = Vec::new();
    for a in pf
        .assignments()
        .iter()
        .filter(|a| super::masked_by_name(&a.key))
    {
        for t in pf.tokens_in(a.rhs.clone()) {
            match &t.kind {
                TokenKind::Str(s) => out.push(s.body.clone()),
                TokenKind::Number => out.push(t.span.clone()),
                _ => {}
            }
        }
    }
    for i in 2..tokens.len() {
        let body = match &tokens[i].kind {
            TokenKind::Str(s) => s.body.clone(),
            TokenKind::Number => tokens[i].span.clone(),
            _ => continue,
        };
        let op = &text[tokens[i - 1].span.clone()];
        let named = match (&tokens[i - 2].kind, op) {
            (TokenKind::Name, "=") => super::masked_by_name(&text[tokens[i - 2].span.clone()]),
            (TokenKind::Str(k), ":") => super::masked_by_name(&text[k.body.clone()]),
            _ => false,
        };
        if named {
            out.push(body);
        }
    }
    out
}

/// Whether string token `i` is the name argument of an environment lookup.
fn names_env_var(pf: &PyFile, i: usize) -> bool {
    let t = pf.tokens();
    let text = pf.text();
    let word = |k: usize| &text[t[k].span.clone()];
    i >= 2
        && matches!(word(i - 1), "(" | "[")
        && matches!(t[i - 2].kind, TokenKind::Name)
        && matches!(word(i - 2), "get" | "getenv" | "environ" | "pop")
}

/// Masks every line whole: the last resort for text that is not Python.
pub fn every_line(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|l| {
            if l.ends_with('\n') {
                format!("{MASK}\n")
            } else {
                MASK.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str, allowed: &[&str]) -> String {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        mask(text, &allowed).expect("python").0
    }

    #[test]
    fn a_role_token_ending_a_sentence_is_shown_with_its_dot() {
        assert_eq!(
            m(
                "# configuration of rdm-ui-green.\nX = 1\n",
                &["rdm-ui-green"]
            ),
            "# **** **** rdm-ui-green.\nX = 1\n"
        );
        // A masked word keeps its dot inside the mask.
        assert_eq!(m("# was hunter2.\n", &[]), "# **** ****\n");
    }

    #[test]
    fn code_is_shown_literals_and_comments_are_not() {
        let t = "SECRET_KEY = \"f3b1c9e0\"\nCACHE_REDIS_URL = \"redis://rdm-redis:6379/0\"  # was hunter2\nWSGI_PROXIES = 2\n";
        assert_eq!(
            m(t, &["rdm-redis"]),
            "SECRET_KEY = \"****\"\nCACHE_REDIS_URL = \"redis://rdm-redis:6379/0\"  # **** ****\nWSGI_PROXIES = 2\n"
        );
    }

    #[test]
    fn a_url_split_across_literals_is_one_url() {
        let t = "DB = (\"postgresql://invenio:\" \"pa\"\n      'ss' + \"word@rdm-postgresql-1/invenio\")\n";
        let out = m(t, &["rdm-postgresql-1"]);
        assert_eq!(
            out,
            "DB = (\"postgresql://****\" \"****\"\n      '****' + \"****@rdm-postgresql-1/invenio\")\n"
        );
    }

    #[test]
    fn secret_names_mask_role_tokens_too() {
        let t =
            "LDAP_BIND_PASSWORD = 'rdm-redis'\nX = dict(host='rdm-redis', password='rdm-redis')\n";
        assert_eq!(
            m(t, &["rdm-redis"]),
            "LDAP_BIND_PASSWORD = '****'\nX = dict(host='rdm-redis', password='****')\n"
        );
    }

    #[test]
    fn environment_variable_names_are_names() {
        assert_eq!(
            m(
                "P = os.environ.get(\"RABBIT_PASSWD\", \"Rq4-fallback\")\n",
                &[]
            ),
            "P = os.environ.get(\"RABBIT_PASSWD\", \"****\")\n"
        );
    }

    #[test]
    fn long_numbers_are_masked() {
        assert_eq!(
            m("PIN = 48151623\nPORT = 5432\n", &[]),
            "PIN = ****\nPORT = 5432\n"
        );
    }

    #[test]
    fn triple_quoted_strings_keep_their_lines() {
        let t = "X = \"\"\"one secret\ntwo\"\"\"\n";
        assert_eq!(m(t, &[]), "X = \"\"\"**** ****\n****\"\"\"\n");
    }
}
