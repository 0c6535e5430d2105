//! Request tables: a test that sends several requests and expects each one's status (and error
//! code) lists them as one-line cases, `caller.method(path).err(status, code)`, that
//! `TestApp::expect_all` sends in order. A failing case is named by its place in the table, its
//! method, path and caller.

use crate::helpers::{Res, TestApp, User};
use reqwest::Method;
use serde_json::Value;

/// A request not yet given its expected answer.
pub struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    caller: String,
    token: Option<String>,
}

/// A request and the answer it must get: a status and, for an error, its code.
pub struct Req {
    call: Call,
    status: u16,
    code: Option<&'static str>,
}

impl Call {
    /// A request without credentials.
    pub fn anon(method: Method, path: &str, body: Option<Value>) -> Call {
        let (path, caller) = (path.to_owned(), "nobody".to_owned());
        Call {
            method,
            path,
            body,
            caller,
            token: None,
        }
    }
    /// Expects `status` (any body).
    pub fn is(self, status: u16) -> Req {
        let call = self;
        Req {
            call,
            status,
            code: None,
        }
    }
    /// Expects a JSON error with `status` and `code`.
    pub fn err(self, status: u16, code: &'static str) -> Req {
        let call = self;
        let code = Some(code);
        Req { call, status, code }
    }
}

/// Who sends a request of a table: a user, or a bare credential (`Token`).
pub trait Caller {
    /// How a failure message names the caller.
    fn label(&self) -> String;
    /// The bearer token it sends.
    fn bearer(&self) -> String;

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Call {
        let (caller, token) = (self.label(), Some(self.bearer()));
        Call {
            caller,
            token,
            ..Call::anon(method, path, body)
        }
    }
    /// A GET.
    fn get(&self, path: &str) -> Call {
        self.call(Method::GET, path, None)
    }
    /// A POST with a JSON body.
    fn post(&self, path: &str, body: Value) -> Call {
        self.call(Method::POST, path, Some(body))
    }
    /// A POST without a body (join, leave, accept…).
    fn post_empty(&self, path: &str) -> Call {
        self.call(Method::POST, path, None)
    }
    /// A PATCH with a JSON body.
    fn patch(&self, path: &str, body: Value) -> Call {
        self.call(Method::PATCH, path, Some(body))
    }
    /// A DELETE.
    fn delete(&self, path: &str) -> Call {
        self.call(Method::DELETE, path, None)
    }
}

impl Caller for User {
    fn label(&self) -> String {
        self.name.clone()
    }
    fn bearer(&self) -> String {
        self.token.clone()
    }
}

/// A bare bearer credential (an API key, an impersonation session…) and its label.
pub struct Token<'a>(pub &'a str, pub &'a str);

impl Caller for Token<'_> {
    fn label(&self) -> String {
        self.0.to_owned()
    }
    fn bearer(&self) -> String {
        self.1.to_owned()
    }
}

impl TestApp {
    /// Sends each request in order and checks its answer; answers the responses.
    pub async fn expect_all(&self, reqs: impl IntoIterator<Item = Req>) -> Vec<Res> {
        let mut answers = Vec::new();
        for (i, req) in reqs.into_iter().enumerate() {
            answers.push(self.run_case(i + 1, req).await);
        }
        answers
    }

    async fn run_case(&self, number: usize, req: Req) -> Res {
        let Req { call, status, code } = req;
        let Call {
            method,
            path,
            body,
            caller,
            token,
        } = call;
        let expected = code.map_or(status.to_string(), |c| format!("{status} {c}"));
        let case = format!("case {number}, {method} {path} as {caller}, expecting {expected}: ");
        let res = self.call(method, &path, token.as_deref(), body).await;
        res.check(status, code, &case)
    }
}

/// A request on its own (method, path and body), for `refused_all` and probes that pick
/// their credential elsewhere.
pub type Probe = (Method, String, Option<Value>);

pub fn get(path: String) -> Probe {
    (Method::GET, path, None)
}
pub fn delete(path: String) -> Probe {
    (Method::DELETE, path, None)
}
pub fn post_empty(path: String) -> Probe {
    (Method::POST, path, None)
}
pub fn post(path: String, body: Value) -> Probe {
    (Method::POST, path, Some(body))
}
pub fn patch(path: String, body: Value) -> Probe {
    (Method::PATCH, path, Some(body))
}
