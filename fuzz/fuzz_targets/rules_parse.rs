//! Rule files, ruler API groups, SLOs and annotation templates: the input as a rule file, as one
//! group, as an SLO and as a template. Parsing never panics; a group that validates has a
//! name and only expressions that parse again from their own text; a template that parses
//! renders (with any value, labels missing or present) without panicking and never to more than
//! a bounded size.

#![no_main]

use std::collections::BTreeMap;

use andante_rules::slo::{parse_slo, SloContext};
use andante_rules::template::{Template, TemplateData};
use andante_rules::{parse_group, parse_rule_file, RuleQuery};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(groups) = parse_rule_file("fuzz.yaml", text) {
        for group in groups {
            assert!(!group.name.trim().is_empty());
            for rule in &group.rules {
                if let RuleQuery::PromQL(_) = rule.query {
                    assert!(andante_tsdb::promql::parse(&rule.expr_text).is_ok(), "{}", rule.expr_text);
                }
            }
        }
    }
    let _ = parse_group("ns", text);
    let context = SloContext {
        latency_buckets: (0..14).map(|i| 0.002 * f64::from(1u32 << i)).collect(),
        max_slos_per_tenant: 10,
    };
    if let Ok(slo) = parse_slo("fuzz", text, &context) {
        assert!(!slo.group.rules.is_empty());
    }
    if let Ok(template) = Template::parse(text) {
        let labels = BTreeMap::from([("instance".to_owned(), "a:1".to_owned())]);
        let external = BTreeMap::new();
        for value in [0.0, -1.5, 1e300, f64::NAN, f64::INFINITY] {
            let rendered = template.render(&TemplateData {
                labels: &labels,
                external_labels: &external,
                external_url: "http://x",
                value,
            });
            // Output grows with the template, never with what a precision asks for.
            assert!(rendered.len() <= 64 * (text.len() + 16) + 4_000, "{} bytes from {text:?}", rendered.len());
        }
    }
});
