//! Function signatures (`<s-n?:s>`), as jsonata-js defines them: argument type checking,
//! substitution of the context value for a missing `-` argument, and wrapping of single
//! values into arrays for `a` parameters.

use crate::error::{Error, Result};
use crate::value::Val;

#[derive(Debug, Clone)]
struct Param {
    /// Regex fragment over type symbols, e.g. `[sm]?`.
    regex: String,
    /// The type symbol (`s`, `n`, `a`, `f`, `x`, ... or `(..)` for a choice).
    kind: char,
    /// `-`: the context value is used when the argument is missing.
    context_regex: Option<String>,
    /// Element type of an `a<x>` parameter.
    subtype: Option<char>,
    /// Declared with `?`.
    optional: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Signature {
    params: Vec<Param>,
    /// `None` accepts any arguments unchanged.
    matcher: Option<regex::Regex>,
}

/// The type symbol jsonata uses for a value in a signature match.
pub(crate) fn symbol(value: Option<&Val>) -> char {
    match value {
        None => 'm',
        Some(Val::Null) => 'l',
        Some(Val::Bool(_)) => 'b',
        Some(Val::Num(_)) => 'n',
        Some(Val::Str(_)) => 's',
        Some(Val::Arr(..)) => 'a',
        Some(Val::Obj(_)) => 'o',
        Some(Val::Func(_)) => 'f',
    }
}

fn array_type_name(subtype: char) -> &'static str {
    match subtype {
        'a' => "arrays",
        'b' => "booleans",
        'f' => "functions",
        'n' => "numbers",
        'o' => "objects",
        's' => "strings",
        _ => "values",
    }
}

fn bad_signature(text: &str) -> Error {
    Error::new("S0401", format!("Invalid function signature: {text}"))
}

impl Signature {
    /// Parses a signature such as `<s-n?:s>` (the return type after `:` is ignored).
    pub fn parse(text: &str) -> Result<Signature> {
        let chars: Vec<char> = text.chars().collect();
        let mut params: Vec<Param> = Vec::new();
        let mut i = 1;
        while i < chars.len() {
            let c = chars[i];
            match c {
                ':' | '>' => break,
                's' | 'n' | 'b' | 'l' | 'o' => params.push(param(format!("[{c}m]"), c)),
                'a' | 'x' => params.push(param("[asnblfom]".into(), c)),
                'j' => params.push(param("[asnblom]".into(), c)),
                'f' => params.push(param("f".into(), c)),
                '(' => {
                    let end = chars[i..]
                        .iter()
                        .position(|&d| d == ')')
                        .ok_or_else(|| bad_signature(text))?
                        + i;
                    let choice: String = chars[i + 1..end].iter().collect();
                    params.push(param(format!("[{choice}m]"), '('));
                    i = end;
                }
                '<' => {
                    let end = matching_angle(&chars, i).ok_or_else(|| bad_signature(text))?;
                    let prev = params.last_mut().ok_or_else(|| bad_signature(text))?;
                    if prev.kind != 'a' && prev.kind != 'f' {
                        return Err(Error::new(
                            "S0401",
                            "Type parameters can only be applied to functions and arrays",
                        ));
                    }
                    if prev.kind == 'a' {
                        prev.subtype = chars.get(i + 1).copied();
                    }
                    i = end;
                }
                '-' => {
                    let prev = params.last_mut().ok_or_else(|| bad_signature(text))?;
                    prev.context_regex = Some(prev.regex.clone());
                    prev.regex.push('?');
                }
                '?' | '+' => {
                    let prev = params.last_mut().ok_or_else(|| bad_signature(text))?;
                    prev.regex.push(c);
                    prev.optional |= c == '?';
                }
                _ => return Err(bad_signature(text)),
            }
            i += 1;
        }
        let pattern: String = params.iter().map(|p| format!("({})", p.regex)).collect();
        let matcher =
            regex::Regex::new(&format!("^{pattern}$")).map_err(|_| bad_signature(text))?;
        Ok(Signature {
            params,
            matcher: Some(matcher),
        })
    }

    /// A signature accepting any arguments (fallback; never used for valid built-ins).
    pub fn any() -> Signature {
        Signature {
            params: Vec::new(),
            matcher: None,
        }
    }

    /// The number of parameters not declared optional (the arity higher-order functions
    /// use when deciding how many of `value, index, array` to pass).
    pub fn required_count(&self) -> usize {
        self.params.iter().filter(|p| !p.optional).count()
    }

    /// Checks `args` against the signature and returns the arguments to pass to the
    /// implementation. Errors carry no function name; the caller adds it.
    pub fn validate(
        &self,
        args: &[Option<Val>],
        context: Option<&Val>,
    ) -> Result<Vec<Option<Val>>> {
        let supplied: String = args.iter().map(|a| symbol(a.as_ref())).collect();
        let Some(matcher) = &self.matcher else {
            return Ok(args.to_vec());
        };
        let Some(captures) = matcher.captures(&supplied) else {
            return Err(self.mismatch(args, &supplied));
        };
        let mut validated = Vec::with_capacity(self.params.len());
        let mut arg_index = 0;
        for (index, param) in self.params.iter().enumerate() {
            let matched = captures.get(index + 1).map(|m| m.as_str()).unwrap_or("");
            if matched.is_empty() {
                if let Some(context_regex) = &param.context_regex {
                    let ctx_symbol = symbol(context).to_string();
                    let ok = regex::Regex::new(&format!("^{context_regex}$"))
                        .map(|r| r.is_match(&ctx_symbol))
                        .unwrap_or(false);
                    if !ok {
                        return Err(Error::new(
                            "T0411",
                            format!(
                                "Context value is not a compatible type with argument {}",
                                arg_index + 1
                            ),
                        ));
                    }
                    validated.push(context.cloned());
                } else {
                    validated.push(args.get(arg_index).cloned().flatten());
                    arg_index += 1;
                }
                continue;
            }
            for single in matched.chars() {
                let arg = args.get(arg_index).cloned().flatten();
                if param.kind == 'a' {
                    validated.push(self.array_arg(param, single, arg, arg_index)?);
                } else {
                    validated.push(arg);
                }
                arg_index += 1;
            }
        }
        Ok(validated)
    }

    fn array_arg(
        &self,
        param: &Param,
        single: char,
        arg: Option<Val>,
        arg_index: usize,
    ) -> Result<Option<Val>> {
        let Some(arg) = arg else { return Ok(None) };
        if let Some(subtype) = param.subtype {
            let ok = match &arg {
                Val::Arr(items, _) => items.first().is_none_or(|first| {
                    symbol(Some(first)) == subtype
                        && items.iter().all(|v| symbol(Some(v)) == subtype)
                }),
                other => symbol(Some(other)) == subtype,
            };
            if !ok {
                return Err(Error::new(
                    "T0412",
                    format!(
                        "Argument {} must be an array of {}",
                        arg_index + 1,
                        array_type_name(subtype)
                    ),
                ));
            }
        }
        if single == 'a' {
            Ok(Some(arg))
        } else {
            Ok(Some(Val::array(vec![arg])))
        }
    }

    fn mismatch(&self, _args: &[Option<Val>], supplied: &str) -> Error {
        let mut partial = String::from("^");
        let mut good_to = 0;
        for param in &self.params {
            partial.push_str(&format!("({})", param.regex));
            match regex::Regex::new(&partial)
                .ok()
                .and_then(|r| r.find(supplied).map(|m| m.end()))
            {
                Some(end) => good_to = end,
                None => break,
            }
        }
        Error::new(
            "T0410",
            format!("Argument {} does not match function signature", good_to + 1),
        )
    }
}

fn param(regex: String, kind: char) -> Param {
    Param {
        regex,
        kind,
        context_regex: None,
        subtype: None,
        optional: false,
    }
}

fn matching_angle(chars: &[char], start: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, &c) in chars.iter().enumerate().skip(start) {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: f64) -> Option<Val> {
        Some(Val::Num(n))
    }

    #[test]
    fn context_value_fills_a_missing_dash_argument() {
        let sig = Signature::parse("<s-:s>").expect("valid");
        let args = sig
            .validate(&[], Some(&Val::str("ctx")))
            .expect("context substituted");
        assert!(matches!(&args[0], Some(Val::Str(s)) if s.as_ref() == "ctx"));
        let err = sig
            .validate(&[], Some(&Val::Num(1.0)))
            .expect_err("incompatible context");
        assert_eq!(err.code, "T0411");
    }

    #[test]
    fn array_parameters_wrap_single_values_and_check_item_types() {
        let sig = Signature::parse("<a<n>:n>").expect("valid");
        let args = sig.validate(&[num(5.0)], None).expect("wrapped");
        assert!(matches!(&args[0], Some(Val::Arr(items, _)) if items.len() == 1));
        let err = sig
            .validate(&[Some(Val::array(vec![Val::str("x")]))], None)
            .expect_err("strings");
        assert_eq!(err.code, "T0412");
    }

    #[test]
    fn mismatches_report_the_first_bad_argument() {
        let sig = Signature::parse("<s-nn?:s>").expect("valid");
        let err = sig
            .validate(&[Some(Val::str("a")), Some(Val::str("b"))], None)
            .expect_err("bad");
        assert_eq!(err.code, "T0410");
        assert!(err.message.starts_with("Argument 2 "), "{}", err.message);
        assert_eq!(sig.required_count(), 2);
    }

    #[test]
    fn optional_and_variadic_parameters() {
        let zip = Signature::parse("<a+>").expect("valid");
        assert_eq!(
            zip.validate(&[num(1.0), num(2.0), num(3.0)], None)
                .expect("variadic")
                .len(),
            3
        );
        let string = Signature::parse("<x-b?:s>").expect("valid");
        assert_eq!(string.required_count(), 1);
    }
}
