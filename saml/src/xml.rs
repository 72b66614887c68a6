//! A writer whose output is already in exclusive XML canonical form (exc-c14n,
//! <http://www.w3.org/2001/10/xml-exc-c14n#>, without an `InclusiveNamespaces` prefix list).
//!
//! We never parse XML: we write the Response ourselves, so it is simplest and safest to write it
//! canonically in the first place and then digest and sign the very bytes we emit. The rules this
//! relies on (W3C C14N 1.0 §2.3 and Exclusive C14N §3):
//!
//! - no XML declaration, no insignificant whitespace, UTF-8;
//! - an empty element is written as a start tag and an end tag (`<a></a>`), never `<a/>`;
//! - a namespace declaration appears on an element exactly when the element (or one of its
//!   attributes) visibly uses the prefix and no *output* ancestor already declares it with the same
//!   value; declarations come before attributes, sorted by prefix;
//! - attributes are sorted by namespace URI, then local name (ours are all unprefixed, so by
//!   name); values are delimited by `"`;
//! - in attribute values `&`, `<`, `"`, TAB, LF and CR are escaped (`>` is not);
//!   in text `&`, `<`, `>` and CR are escaped; nothing else is.
//!
//! The callers take care of the namespace rule by passing the declaration to [`Writer::open`]
//! on the elements where it is due (the tests check the result against independent
//! canonicalisers).

/// Appends canonical XML to a `String`.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    out: String,
}

impl Writer {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            out: String::with_capacity(capacity),
        }
    }

    /// A start tag: `<qname xmlns:prefix="uri" a="v" ...>`.
    ///
    /// `attrs` must be unprefixed and already in canonical (byte-wise) order by name; this is
    /// a fixed property of each call site, checked in debug builds.
    pub(crate) fn open(&mut self, qname: &str, ns: Option<(&str, &str)>, attrs: &[(&str, &str)]) {
        debug_assert!(
            attrs.windows(2).all(|w| w[0].0 < w[1].0),
            "attributes of {qname} are not in canonical order"
        );
        self.out.push('<');
        self.out.push_str(qname);
        if let Some((prefix, uri)) = ns {
            self.out.push_str(" xmlns:");
            self.out.push_str(prefix);
            self.out.push_str("=\"");
            escape_attr(&mut self.out, uri);
            self.out.push('"');
        }
        for (name, value) in attrs {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_attr(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('>');
    }

    /// An end tag.
    pub(crate) fn close(&mut self, qname: &str) {
        self.out.push_str("</");
        self.out.push_str(qname);
        self.out.push('>');
    }

    /// Character data, escaped.
    pub(crate) fn text(&mut self, text: &str) {
        escape_text(&mut self.out, text);
    }

    /// An element with only attributes and text: `<q ...>text</q>`.
    pub(crate) fn leaf(
        &mut self,
        qname: &str,
        ns: Option<(&str, &str)>,
        attrs: &[(&str, &str)],
        text: &str,
    ) {
        self.open(qname, ns, attrs);
        self.text(text);
        self.close(qname);
    }

    /// Appends already-canonical XML written by another [`Writer`].
    pub(crate) fn raw(&mut self, xml: &str) {
        self.out.push_str(xml);
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.out
    }

    pub(crate) fn into_string(self) -> String {
        self.out
    }
}

/// Escapes an attribute value as C14N does.
fn escape_attr(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// Escapes character data as C14N does.
fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// Escapes text for XML that is not signed (the metadata). Same as canonical text escaping; `"`
/// is escaped too so the result is also safe inside an attribute.
pub(crate) fn escape_plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("&quot;"),
            c => escape_text(&mut out, c.encode_utf8(&mut [0; 4])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_c14n() {
        let mut w = Writer::default();
        w.leaf(
            "p:e",
            Some(("p", "urn:x")),
            &[("A", "&<>\"'\t\n\r"), ("b", "x")],
            "&<>\"'\t\n\r",
        );
        assert_eq!(
            w.as_str(),
            "<p:e xmlns:p=\"urn:x\" A=\"&amp;&lt;>&quot;'&#x9;&#xA;&#xD;\" b=\"x\">\
             &amp;&lt;&gt;\"'\t\n&#xD;</p:e>"
        );
    }

    #[test]
    fn empty_elements_have_end_tags() {
        let mut w = Writer::default();
        w.open("a", None, &[]);
        w.close("a");
        assert_eq!(w.into_string(), "<a></a>");
    }

    #[test]
    fn plain_escaping_covers_attributes_too() {
        assert_eq!(escape_plain("a&b<c>d\"e'"), "a&amp;b&lt;c&gt;d&quot;e'");
    }

    #[test]
    #[should_panic(expected = "canonical order")]
    #[cfg(debug_assertions)]
    fn unsorted_attributes_are_caught() {
        Writer::default().open("a", None, &[("b", ""), ("a", "")]);
    }
}
