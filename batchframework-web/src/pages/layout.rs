//! The frame every page shares: head, navigation, the message an action left, and the pages
//! that need no data (login, errors).

use maud::{html, Markup, DOCTYPE};

use crate::error::ErrorPage;
use crate::security::Session;

/// A whole page: `heading` in the title and `content` in the frame.
pub(crate) fn page(session: &Session, heading: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (heading) " · " (session.title) }
                // No icon: without this line the browser asks the site's root for one.
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(session.link("/assets/dashboard.css"));
                script src=(session.link("/assets/dashboard.js")) defer {}
            }
            body data-refresh-seconds=(session.refresh_seconds) {
                header.top {
                    a.brand href=(session.link("/")) { (session.title) }
                    nav {
                        a href=(session.link("/")) { "Overview" }
                        a href=(session.link("/operations")) { "Operations" }
                        @if !session.read_only {
                            a href=(session.link("/prune")) { "Prune" }
                        }
                    }
                    @if session.read_only {
                        span.badge.read-only title="Actions are turned off" { "read-only" }
                    }
                    form.search method="get" action=(session.link("/operations")) {
                        label for="search-id" { "Operation id" }
                        input #search-id type="search" name="id" inputmode="numeric" placeholder="Go to id";
                    }
                }
                main {
                    @if let Some(message) = &session.flash {
                        p.flash role="status" { (message) }
                    }
                    h1 { (heading) }
                    (content)
                }
            }
        }
    }
}

/// A hidden field with the CSRF token, for every form that POSTs.
pub(crate) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A form of one button that POSTs to `action`.
pub(crate) fn action_button(
    session: &Session,
    class: &str,
    id: Option<&str>,
    action: &str,
    label: &str,
) -> Markup {
    html! {
        form class=(class) id=[id] method="post" action=(action) {
            (csrf_field(session))
            button type="submit" { (label) }
        }
    }
}

/// The login form (when [`Options::token`](crate::Options::token) is set).
pub(crate) fn login(session: &Session, error: Option<&str>) -> Markup {
    page(
        session,
        "Log in",
        html! {
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            p { "This dashboard asks for the token it was started with." }
            form.login method="post" action=(session.link("/login")) {
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Log in" }
            }
        },
    )
}

/// An error, as a page.
pub(crate) fn error(session: &Session, error: &ErrorPage) -> Markup {
    let heading = format!(
        "{} {}",
        error.status.as_u16(),
        error.status.canonical_reason().unwrap_or("Error")
    );
    page(
        session,
        &heading,
        html! {
            p.error role="alert" { (error.message) }
            p { a href=(session.link("/")) { "Back to the overview" } }
        },
    )
}
