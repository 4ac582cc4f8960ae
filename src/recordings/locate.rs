//! Finding the two halves of a G.729 recording on the device (DESIGN §5).
//!
//! The manual does not name the `.dat` halves, so configurable name
//! templates are tried in order (`{stem}` = the `<Recording>` file name
//! without `.wav`), and as a last resort the day directory listing
//! (`…/mcc/Recorder/{YYYYMMDD}/`, an HTML page) is searched for files that
//! start with the stem and contain `send` / `recv`. This file holds the
//! pure parts (templates, listing parsing); the fetcher does the I/O.

use super::archive::check_file_name;

/// The (send, recv) file names a template pair gives for `stem`; `None`
/// when a template makes an unsafe name (it is then skipped).
pub fn template_names(templates: &[[String; 2]], stem: &str) -> Vec<(String, String)> {
    templates
        .iter()
        .filter_map(|[s, r]| {
            let (s, r) = (s.replace("{stem}", stem), r.replace("{stem}", stem));
            match (check_file_name(&s), check_file_name(&r)) {
                (Ok(()), Ok(())) => Some((s, r)),
                _ => {
                    tracing::warn!(send = %s, recv = %r, "G.729 name template gives an unsafe file name; skipped");
                    None
                }
            }
        })
        .collect()
}

/// File names linked from an HTML directory listing (the last path segment
/// of every `href`), safe names only, in page order, without duplicates.
pub fn listing_names(html: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut rest = 0usize;
    while let Some(i) = lower[rest..].find("href") {
        rest += i + 4;
        let trimmed = html[rest..].trim_start();
        let Some(value_part) = trimmed.strip_prefix('=') else {
            continue;
        };
        let value_part = value_part.trim_start();
        let (quote, body) = match value_part.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &value_part[1..]),
            _ => (None, value_part),
        };
        let end = match quote {
            Some(q) => body.find(q),
            None => body.find(|c: char| c.is_whitespace() || c == '>'),
        }
        .unwrap_or(body.len());
        let target = &body[..end];
        let target = target.split(['?', '#']).next().unwrap_or("");
        if let Some(name) = target.rsplit('/').find(|s| !s.is_empty()) {
            if check_file_name(name).is_ok() && !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The send and recv halves of `stem` among `names`: files that start with
/// the stem and contain `send` / `recv` after it (`.dat` files preferred).
pub fn halves_in_listing(names: &[String], stem: &str) -> Option<(String, String)> {
    let pick = |side: &str| {
        let mut found: Vec<&String> = names
            .iter()
            .filter(|n| {
                n.strip_prefix(stem)
                    .is_some_and(|rest| rest.to_ascii_lowercase().contains(side))
            })
            .collect();
        found.sort_by_key(|n| !n.to_ascii_lowercase().ends_with(".dat"));
        found.first().map(|n| n.to_string())
    };
    Some((pick("send")?, pick("recv")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_templates() -> Vec<[String; 2]> {
        crate::config::RecordingsConfig::default().g729_templates
    }

    #[test]
    fn template_names_fill_the_stem() {
        let names = template_names(&default_templates(), "a_b_cd");
        assert_eq!(
            names[0],
            ("a_b_cd_send.dat".into(), "a_b_cd_recv.dat".into())
        );
        assert_eq!(
            names[2],
            ("a_b_cd-send.dat".into(), "a_b_cd-recv.dat".into())
        );
    }

    #[test]
    fn template_names_skip_unsafe_templates() {
        let t = vec![["../{stem}.send".to_string(), "{stem}.recv".to_string()]];
        assert!(template_names(&t, "x").is_empty());
    }

    #[test]
    fn listing_names_reads_hrefs() {
        let html = r#"<html><a href="../">Parent</a> <A HREF='a-send.dat'>a</A>
            <a href=/mcc/Recorder/20240108/a-recv.dat?x=1>b</a> <a href="../../etc/passwd">x</a>
            <a href="a b.dat">sp</a><a href="a-send.dat">dup</a>"#;
        assert_eq!(
            listing_names(html),
            vec!["a-send.dat", "a-recv.dat", "passwd"]
        );
    }

    #[test]
    fn halves_in_listing_needs_both_sides() {
        let names: Vec<String> = ["x.wav", "x-send.dat", "x-recv.dat", "y-send.dat"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            halves_in_listing(&names, "x"),
            Some(("x-send.dat".into(), "x-recv.dat".into()))
        );
        assert_eq!(halves_in_listing(&names, "y"), None);
    }

    #[test]
    fn halves_in_listing_prefers_dat_files() {
        let names: Vec<String> = ["s.send.txt", "s.send.dat", "s.recv.dat"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            halves_in_listing(&names, "s"),
            Some(("s.send.dat".into(), "s.recv.dat".into()))
        );
    }
}
