//! Parse arbitrary bytes as a pattern and as an event, match them with the
//! compiled and the reference matcher, and apply an input transformer:
//! nothing may panic or hang, and the two matchers must agree.
//!
//! Input layout: pattern text, a 0xFF byte, event text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use operon_pattern::{DeliveryContext, Matcher, Pattern, TargetInput, reference};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0xFF).unwrap_or(data.len());
    let pattern_text = String::from_utf8_lossy(&data[..split]);
    let event_text = String::from_utf8_lossy(data.get(split + 1..).unwrap_or_default());
    let mut matcher: Matcher<u8> = Matcher::new();
    if let Ok(pattern) = Pattern::parse(&pattern_text) {
        matcher.add(0, &pattern);
        let compiled = matcher.matches(&event_text).ok().map(|m| !m.is_empty());
        // The reference matcher tries every combination: keep it to small events.
        let expected = if event_text.len() < 2048 { reference::matches(&pattern, &event_text) } else { None };
        if let (Some(a), Some(b)) = (compiled, expected) {
            assert_eq!(a, b, "compiled and reference matchers disagree");
        }
    } else {
        let _ = matcher.matches(&event_text);
    }
    if let Ok(event) = serde_json::from_str::<serde_json::Value>(&event_text) {
        let paths = vec![("p".to_string(), "$.detail".to_string())];
        if let Ok(input) = TargetInput::new("t", None, None, Some((&paths, &pattern_text))) {
            let _ = input.apply(&event, &DeliveryContext::default());
        }
    }
});
