//! A tolerant XML reader into a small tree: Glance's answer shapes are largely unconfirmed,
//! so the interpreter searches by (case-insensitive) names instead of binding to a schema.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::vendors::http::TreeBudget;

/// One element: lowercased local name, attributes (lowercased names) and direct text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Element {
    pub name: String,
    /// The local name as written, for keys shown to consumers (`dialIn`).
    pub tag: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub(super) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub(super) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The element and its descendants, depth first, each with its depth (root = 0).
    pub(super) fn walk(&self) -> Vec<(usize, &Element)> {
        let mut out = Vec::new();
        let mut stack = vec![(0usize, self)];
        while let Some((depth, e)) = stack.pop() {
            out.push((depth, e));
            for c in e.children.iter().rev() {
                stack.push((depth + 1, c));
            }
        }
        out
    }

    /// The trimmed text of this element and everything inside it.
    pub(super) fn all_text(&self) -> String {
        let mut parts = Vec::new();
        for (_, e) in self.walk() {
            let t = e.text.trim();
            if !t.is_empty() {
                parts.push(t.to_owned());
            }
        }
        parts.join(" ")
    }

    pub(super) fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }
}

fn tag(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_owned()
}

fn local(name: &str) -> String {
    tag(name).to_ascii_lowercase()
}

fn element(start: &quick_xml::events::BytesStart<'_>) -> Result<Element, String> {
    let mut attributes = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let value = a.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| e.to_string())?.into_owned();
        attributes.push((local(a.key.as_ref()), value));
    }
    let tag = tag(start.name().as_ref());
    Ok(Element { name: tag.to_ascii_lowercase(), tag, attributes, text: String::new(), children: Vec::new() })
}

/// Parses a document with exactly one root element. Anything else (HTML error pages,
/// truncated bodies, plain text, a tree past the answer budget) is an error.
pub(super) fn parse(body: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut budget = TreeBudget::default();
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(s) => {
                if root.is_some() {
                    return Err("content after the root element".into());
                }
                budget.open()?;
                stack.push(element(&s)?);
            }
            Event::Empty(s) => {
                if root.is_some() {
                    return Err("content after the root element".into());
                }
                budget.open()?;
                budget.close();
                let e = element(&s)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(e),
                    None => root = Some(e),
                }
            }
            Event::End(_) => {
                budget.close();
                let done = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(t) => {
                let text = t.xml10_content();
                match stack.last_mut() {
                    Some(e) => e.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::CData(t) => {
                if let Some(e) = stack.last_mut() {
                    e.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                        .ok_or_else(|| format!("unknown entity &{};", r.xml10_content()))?
                        .to_owned(),
                };
                match stack.last_mut() {
                    Some(e) => e.text.push_str(&resolved),
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100,000 nested elements once overflowed the stack when their tree was dropped.
    #[test]
    fn a_hostile_depth_or_breadth_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert!(parse(&deep).unwrap_err().contains("deeper than 64"));
        let wide = format!("<r>{}</r>", "<a/>".repeat(20_000));
        assert!(parse(&wide).unwrap_err().contains("more than 10000"));
        let fine = format!("{}{}", "<a>".repeat(64), "</a>".repeat(64));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn reads_names_attributes_text_and_entities() {
        let doc = parse(
            r#"<?xml version="1.0" standalone="yes"?>
            <!-- comment --><g:Result Status="Error"><Message>a &amp; b &#65;</Message><Code/></g:Result>"#,
        )
        .unwrap();
        assert_eq!(doc.name, "result");
        assert_eq!(doc.attribute("status"), Some("Error"));
        assert_eq!(doc.child("message").unwrap().text, "a & b A");
        assert!(doc.child("code").unwrap().is_leaf());
        assert_eq!(doc.walk().len(), 3);
    }

    #[test]
    fn refuses_what_is_not_one_xml_document() {
        assert!(parse("").is_err());
        assert!(parse("Service Unavailable").is_err());
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a></a><b/>").is_err());
        assert!(parse("<html><body>oops").is_err());
    }
}
