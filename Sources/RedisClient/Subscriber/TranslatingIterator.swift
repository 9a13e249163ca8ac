/// An iterator that turns each element of another into zero or one element of its own: what every public
/// sequence over a subscriber's stream does, written once.
struct TranslatingIterator<Base: AsyncIteratorProtocol, Element>: AsyncIteratorProtocol
where Base.Failure == Never {
    private var base: Base
    private let translate: @Sendable (Base.Element) -> Element?

    /// Yields `translate(element)` for each element of `base`, skipping those it maps to `nil`.
    init(_ base: Base, _ translate: @escaping @Sendable (Base.Element) -> Element?) {
        self.base = base
        self.translate = translate
    }

    mutating func next() async -> Element? {
        await next(isolation: nil)
    }

    mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
        while let element = await base.next(isolation: actor) {
            if let translated = translate(element) { return translated }
        }
        return nil
    }
}
