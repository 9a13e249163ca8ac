import RedisClient
import Logging
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdRedisSession
import RedisSession
import SettingsSync

/// `GET /`, `POST /login`, `POST /logout`, `GET /sessions`, `POST /sessions/sign-out`, `POST /logout-everywhere`.
struct AccountRoutes: Sendable {
    let state: AppState

    func register(on router: Router<AppRequestContext>) {
        router.get("/") { request, context in try await landing(request, context) }
        router.post("/login") { request, context in try await login(request, context) }
        router.post("/logout") { request, context in try await logout(request, context) }
        router.get("/sessions") { request, context in try await sessions(request, context) }
        router.post("/sessions/sign-out") { request, context in try await signOutDevice(request, context) }
        router.post("/logout-everywhere") { request, context in try await logoutEverywhere(request, context) }
    }

    /// The signed-in landing page, or the login form. An anonymous view writes nothing to Redis.
    func landing(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        guard let session = context.session.current, let user = session.userID else {
            return loginForm(request, error: nil, status: .ok)
        }
        let timezone: String
        do {
            timezone = try await state.cache.timezone(for: user) ?? session["timezone"] ?? "UTC"
        } catch {
            return Pages.unavailable()
        }
        let page = Pages.landing(
            frame: state.frame, user: user, timezone: timezone, session: session,
            csrf: session[CSRFToken.attribute] ?? "", now: Date())
        return Pages.html(page)
    }

    /// The login form with its double-submit CSRF cookie (set only when the visitor has none).
    func loginForm(_ request: Request, error: String?, username: String = "", status: HTTPResponse.Status) -> Response {
        let existing = SessionCookie.sessionID(named: state.csrfCookieName, fromCookieHeader: request.headers[.cookie])?
            .text
        let token = existing ?? CSRFToken.make()
        var response = Pages.html(
            Pages.login(frame: state.frame, csrf: token, error: error, username: username), status: status)
        if existing == nil {
            response.headers.append(HTTPField(name: .setCookie, value: state.csrfCookieHeader(token)))
        }
        return response
    }

    func login(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let form = try await FormBody.parse(request, context: context)
        let submitted = form["csrf"] ?? request.headers[.xCSRFToken]
        let anonymousToken = SessionCookie.sessionID(
            named: state.csrfCookieName, fromCookieHeader: request.headers[.cookie])?.text
        let sameSite = CSRFToken.isSameSite(
            origin: request.headers[.origin], referer: request.headers[.referer],
            host: state.configuration.publicHost ?? request.head.authority)
        guard sameSite,
            CSRFToken.isWellFormed(anonymousToken) && CSRFToken.matches(submitted, anonymousToken)
                || CSRFToken.matches(submitted, context.session.current?[CSRFToken.attribute])
        else {
            context.logger.notice("login refused: cross-site or forged CSRF token")
            return Pages.forbidden(frame: state.frame)
        }
        let username = form["username"] ?? ""
        let verdict = await state.users.verify(
            username: username, password: form["password"] ?? "",
            address: clientAddress(request, context) ?? "unknown", logger: context.logger)
        switch verdict {
        case .throttled(let retryAfter):
            var response = loginForm(
                request, error: "Too many failed attempts for this account. Try again in \(retryAfter) s.",
                username: username, status: .tooManyRequests)
            response.headers[.retryAfter] = String(retryAfter)
            return response
        case .rejected:
            return loginForm(request, error: "Wrong user name or password.", username: username, status: .unauthorized)
        case .accepted(let userID):
            let session: Session
            do {
                session = try await state.flows.login(
                    session: context.session.current, userID: userID,
                    attributes: [CSRFToken.attribute: CSRFToken.make()],
                    labels: deviceLabels(request, context))
            } catch {
                return Pages.unavailable()
            }
            context.logger.info("signed in", metadata: ["rsess.user": "\(userID)"])
            context.session.adopt(session)  // the middleware sets the new ID's cookie
            return Pages.redirect(to: "/")
        }
    }

    func logout(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        guard let session = context.session.current else { return Pages.redirect(to: "/") }
        guard try await Self.csrfMatches(request, context, session) else {
            return Pages.forbidden(frame: state.frame)
        }
        do {
            try await state.flows.logout(session: session)
        } catch {
            return Pages.unavailable()
        }
        context.session.ended()  // the middleware clears the cookie
        return Pages.redirect(to: "/")
    }

    func sessions(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        guard let session = context.session.current, let user = session.userID else { return Pages.redirect(to: "/") }
        do {
            let list = try await state.store.sessions(userID: user)
            let timezone = try await state.cache.timezone(for: user) ?? "UTC"
            return Pages.html(
                Pages.sessions(
                    frame: state.frame, list: list, current: session.id.handle, timezone: timezone,
                    csrf: session[CSRFToken.attribute] ?? ""))
        } catch {
            return Pages.unavailable()
        }
    }

    func logoutEverywhere(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        guard let session = context.session.current, let user = session.userID else { return Pages.redirect(to: "/") }
        guard try await Self.csrfMatches(request, context, session) else {
            return Pages.forbidden(frame: state.frame)
        }
        do {
            let count = try await state.flows.logoutEverywhere(userID: user)
            context.logger.info(
                "logged out everywhere", metadata: ["rsess.user": "\(user)", "rsess.sessions": "\(count)"])
        } catch {
            return Pages.unavailable()
        }
        context.session.ended()
        return Pages.redirect(to: "/")
    }

    /// Ends one of the user's other sessions, named by its handle (the page never holds another device's ID).
    func signOutDevice(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        guard let session = context.session.current, let user = session.userID else { return Pages.redirect(to: "/") }
        // The body can be read once: the CSRF token and the handle come from the same parse.
        let form = try await FormBody.parse(request, context: context)
        guard CSRFToken.matches(form["csrf"] ?? request.headers[.xCSRFToken], session[CSRFToken.attribute]) else {
            return Pages.forbidden(frame: state.frame)
        }
        guard let handle = form["handle"].flatMap({ SessionHandle($0) }) else { return Pages.redirect(to: "/sessions") }
        do {
            try await state.flows.signOut(handle: handle, userID: user)
        } catch {
            return Pages.unavailable()
        }
        guard handle == session.id.handle else { return Pages.redirect(to: "/sessions") }
        context.session.ended()
        return Pages.redirect(to: "/")
    }

    /// What the sessions page shows of the device that signs in: its user agent and address, shortened. The
    /// address is ``clientAddress(_:_:)``'s: the one the login limits count.
    func deviceLabels(_ request: Request, _ context: AppRequestContext) -> [String: String] {
        var labels: [String: String] = [:]
        if let agent = request.headers[.userAgent], !agent.isEmpty { labels["agent"] = String(agent.prefix(200)) }
        if let address = clientAddress(request, context) { labels["address"] = address }
        return labels
    }

    /// The client, as the login limits and the device labels see it: the peer, or, when the peer is a trusted proxy
    /// (``WebTierConfiguration/trustedProxies``), the right-most `X-Forwarded-For` hop that is not one. With no
    /// trusted proxy the header is ignored, so a client that reaches an instance directly cannot choose its address.
    func clientAddress(_ request: Request, _ context: AppRequestContext) -> String? {
        state.kit.clientAddress(peer: context.peerAddress, headers: request.headers)
    }

    /// A signed-in visitor's POST must carry the session's token, in the form or in `X-CSRF-Token`.
    static func csrfMatches(_ request: Request, _ context: AppRequestContext, _ session: Session) async throws -> Bool {
        let form = try await FormBody.parse(request, context: context)
        return CSRFToken.matches(form["csrf"] ?? request.headers[.xCSRFToken], session[CSRFToken.attribute])
    }
}
