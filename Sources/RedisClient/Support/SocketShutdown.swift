internal import CHiredis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Wakes a thread blocked on `fd` without closing the descriptor (its number could be reused meanwhile).
func shutdownSocket(_ fd: Int32) {
    #if canImport(Darwin)
        _ = Darwin.shutdown(fd, Int32(SHUT_RDWR))
    #else
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    #endif
}
