import RedisSession

// The component alone: its session IDs and cookies, no web framework.
print(SessionCookie(secure: true).name)
