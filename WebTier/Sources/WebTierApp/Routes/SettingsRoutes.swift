import RedisClient
import Logging
import HTTPTypes
import Hummingbird
import HummingbirdRedisSession
import RedisSession
import SettingsSync

/// `GET /settings`, `POST /settings`: the Django view's behaviour, across instances.
struct SettingsRoutes: Sendable {
    let state: AppState

    func register(on router: Router<AppRequestContext>) {
        router.get("/settings") { request, context in try await show(request, context) }
        router.post("/settings") { request, context in try await change(request, context) }
    }

    func show(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        guard let session = context.session.current, let user = session.userID else { return Pages.redirect(to: "/") }
        do {
            let current = try await state.cache.timezone(for: user) ?? "UTC"
            return Pages.html(
                Pages.settings(frame: state.frame, current: current, csrf: session[CSRFToken.attribute] ?? "")
            )
        } catch {
            return Pages.unavailable()
        }
    }

    /// An htmx request gets `204` + `HX-Refresh: true`; a plain form post gets `303` to the landing page; an unknown
    /// timezone gets `422` with the form and an error, and changes nothing.
    func change(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        guard var session = context.session.current, let user = session.userID else { return Pages.redirect(to: "/") }
        let form = try await FormBody.parse(request, context: context)
        let token = session[CSRFToken.attribute]
        guard CSRFToken.matches(form["csrf"] ?? request.headers[.xCSRFToken], token) else {
            return Pages.forbidden(frame: state.frame)
        }
        let requested = form["timezone"] ?? ""
        do {
            try await state.flows.changeTimezone(session: &session, to: requested)
            context.session.adopt(session)  // saved by the flow: nothing left for the middleware to write
        } catch  where error.code == .unknownTimezone {
            let current = (try? await state.cache.timezone(for: user)) ?? session["timezone"] ?? "UTC"
            let page = Pages.settings(
                frame: state.frame, current: current, csrf: token ?? "",
                error: "“\(requested.prefix(64))” is not a timezone this site knows. Nothing was changed.")
            return Pages.html(page, status: .unprocessableContent)
        } catch  where error.code == .sessionNotFound {
            return Pages.redirect(to: "/")  // logged out meanwhile: logout wins
        } catch {
            return Pages.unavailable()
        }
        if request.headers[.hxRequest] == "true" {
            return Response(status: .noContent, headers: [.hxRefresh: "true"])
        }
        return Pages.redirect(to: "/")
    }
}
