//! The account owner at the platform's consent page: a test plays the
//! human who opens the authorization URL and clicks Allow (or Deny), as a
//! browser would submit the page's form.

/// Submits the consent page of `authorize_url` for `account` with
/// `decision` (`allow` or `deny`); returns where the platform sends the
/// browser back (the redirect URI with the code or the error).
pub async fn answer(authorize_url: &str, account: &str, decision: &str) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // The page itself renders (what a human would read).
    let page = http.get(authorize_url).send().await.expect("the consent page answers");
    assert!(page.status().is_success(), "the consent page: {}", page.status());
    let url = reqwest::Url::parse(authorize_url).unwrap();
    let origin = url.origin().ascii_serialization();
    let mut form: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .filter(|(k, _)| k != "account")
        .collect();
    form.push(("account".into(), account.into()));
    form.push(("decision".into(), decision.into()));
    let r = http
        .post(format!("{origin}/oauth/authorize"))
        .form(&form)
        .send()
        .await
        .expect("the consent POST");
    assert!(r.status().is_redirection(), "the consent answer: {}", r.status());
    r.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .expect("a redirect back")
        .to_string()
}

/// [`answer`], then follows the redirect (to the CLI's loopback listener
/// or the approval app's callback).
pub async fn answer_and_return(authorize_url: &str, account: &str, decision: &str) -> reqwest::Response {
    let back = answer(authorize_url, account, decision).await;
    reqwest::get(&back).await.expect("the redirect target answers")
}
