//! Finding the two halves of a G.729 recording on the device (docs/recordings.md).
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

/// Most names [`listing_names`] returns: a busy device records a few
/// thousand files a day (one WAV or two G.729 halves per call).
pub const MAX_LISTING_NAMES: usize = 20_000;

/// File names linked from an HTML directory listing (the last path segment
/// of every `href`), safe names only, in page order, without duplicates, at
/// most [`MAX_LISTING_NAMES`].
///
/// One pass over the page: an attribute value is consumed once found, so
/// the work is linear in the page whatever it holds (an unclosed quote runs
/// to the end of the page, as in HTML).
pub fn listing_names(html: &str) -> Vec<String> {
    let bytes = html.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut i = 0usize;
    while i + 4 <= bytes.len() {
        if !bytes[i..i + 4].eq_ignore_ascii_case(b"href") {
            i += 1;
            continue;
        }
        i = skip_spaces(bytes, i + 4);
        if bytes.get(i) != Some(&b'=') {
            continue;
        }
        i = skip_spaces(bytes, i + 1);
        let (start, end, next) = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let end = find_from(bytes, i + 1, |b| b == q);
                (i + 1, end, end + 1)
            }
            _ => {
                let end = find_from(bytes, i, |b| b.is_ascii_whitespace() || b == b'>');
                (i, end, end)
            }
        };
        i = next;
        // Delimiters are ASCII, so these are char boundaries.
        let target = html[start..end].split(['?', '#']).next().unwrap_or("");
        let Some(name) = target.rsplit('/').find(|s| !s.is_empty()) else {
            continue;
        };
        if check_file_name(name).is_ok() && seen.insert(name) {
            if out.len() == MAX_LISTING_NAMES {
                tracing::warn!(
                    limit = MAX_LISTING_NAMES,
                    "directory listing names more files than are read; the rest is ignored"
                );
                break;
            }
            out.push(name.to_string());
        }
    }
    out
}

fn skip_spaces(bytes: &[u8], from: usize) -> usize {
    find_from(bytes, from, |b| !b.is_ascii_whitespace())
}

/// The first position at or after `from` whose byte matches, else the length.
fn find_from(bytes: &[u8], from: usize, hit: impl Fn(u8) -> bool) -> usize {
    bytes
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| hit(b)))
        .map_or(bytes.len(), |p| from + p)
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
    fn listing_names_consumes_values_and_caps_the_count() {
        // What an href's value holds is not read again as a link.
        let html = r#"<a href="x.dat href=y.dat"><a href='real.dat'>"#;
        assert_eq!(listing_names(html), vec!["real.dat"]);
        // Unquoted values end at a space or '>'; an unclosed quote runs to the end.
        assert_eq!(
            listing_names("<a href=a.dat>x</a><a href=\"b.dat>y<a href=c.dat>"),
            vec!["a.dat"]
        );
        let many: String = (0..MAX_LISTING_NAMES + 5)
            .map(|i| format!("<a href=\"f{i}.dat\">"))
            .collect();
        let names = listing_names(&many);
        assert_eq!(names.len(), MAX_LISTING_NAMES);
        assert_eq!(
            names.last().unwrap(),
            &format!("f{}.dat", MAX_LISTING_NAMES - 1)
        );
    }

    /// 4 MiB pages built to defeat a scanner that searches from every
    /// `href` again: the work stays linear, and real links are still found.
    #[test]
    fn listing_names_is_linear_on_pathological_pages() {
        const SIZE: usize = 4 << 20;
        let fill = |unit: &str| unit.repeat(SIZE / unit.len());
        let cases: Vec<(String, Vec<&str>)> = vec![
            // Every href opens a quote that never closes.
            (
                format!("<a href=\"ok.dat\">{}", fill("<a href=\"")),
                vec!["ok.dat"],
            ),
            (
                format!("<a href='ok.dat'>{}", fill("href='")),
                vec!["ok.dat"],
            ),
            // href without '=', and '=' without a value.
            (
                format!("{}<a href=ok.dat>", fill("hrefhref")),
                vec!["ok.dat"],
            ),
            (
                format!("{}<a href=ok.dat>", fill("href = >")),
                vec!["ok.dat"],
            ),
            // One huge attribute value, then a real link.
            (
                format!("<a href=\"{}\"><a href=\"ok.dat\">", fill("x")),
                vec!["ok.dat"],
            ),
            // Unquoted values that never end.
            (format!("<a href=ok.dat>{}", fill("href=a")), vec!["ok.dat"]),
        ];
        let started = std::time::Instant::now();
        for (i, (html, want)) in cases.iter().enumerate() {
            assert!(html.len() >= SIZE - 16, "case {i} is {} bytes", html.len());
            let t = std::time::Instant::now();
            assert_eq!(&listing_names(html), want, "case {i}");
            eprintln!("case {i}: {} bytes in {:?}", html.len(), t.elapsed());
        }
        // A quadratic scan of these takes hours; generous for a slow machine.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "took {:?}",
            started.elapsed()
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
