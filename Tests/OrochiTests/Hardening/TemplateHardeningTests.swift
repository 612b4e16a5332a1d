import Foundation
import Testing
@testable import Orochi

/// Chat templates are untrusted code (they come with downloaded models): arithmetic that traps,
/// nesting that overflows the stack, loops that never end and values that double until memory
/// runs out are each an error naming the template's fault, never a dead server (hardening
/// issue, class 2).
struct TemplateHardeningTests {
    static func render(_ source: String, messages: Int = 1, content: String = "hi") throws -> String {
        let message: [(String, TemplateValue)] = [("role", .string("user")), ("content", .string(content))]
        return try ChatTemplate(source).render(messages: Array(repeating: message, count: messages), bosToken: "<s>", eosToken: "</s>",
                                                addGenerationPrompt: false)
    }

    static func fails(_ source: String, messages: Int = 1, content: String = "hi", _ named: String) {
        do {
            _ = try render(source, messages: messages, content: content)
            Issue.record("\(source.prefix(80)) rendered")
        } catch let error as ChatTemplateError {
            #expect(error.message.contains(named), "\(source.prefix(80)): \(error.message)")
        } catch {
            Issue.record("\(error)")
        }
    }

    /// Int.min % -1 and -Int.min trapped and killed the server.
    @Test func integerArithmeticIsChecked() throws {
        #expect(try Self.render("{{ (-9223372036854775807 - 1) % -1 }}") == "0", "Python's answer")
        #expect(try Self.render("{{ -7 % 3 }} {{ 7 % -3 }}") == "2 -2")
        Self.fails("{{ -(-9223372036854775807 - 1) }}", "overflow")
        Self.fails("{{ (-9223372036854775807 - 1) - 1 }}", "overflow")
        Self.fails("{{ 9223372036854775807 * 2 }}", "overflow")
        Self.fails("{{ 1 % 0 }}", "modulo by zero")
    }

    /// 50,000 levels of anything recursive overflowed the stack when parsing or rendering.
    @Test(arguments: [
        ("(", "1", ")"), ("not ", "x", ""), ("- ", "1", ""), ("[", "1", "]"),
        ("{% if x %}", "", "{% endif %}"), ("{% for m in messages %}", "", "{% endfor %}"), ("1 if x else ", "2", ""),
    ])
    func deepNestingIsRefused(_ shape: (String, String, String)) {
        let n = 50_000
        let (open, middle, close) = shape
        let inner = String(repeating: open, count: n) + middle + String(repeating: close, count: n)
        Self.refusedAtLoad(open.hasPrefix("{%") ? inner : "{{ " + inner + " }}", "\(open)… × \(n)")
    }

    /// Long chains are built by loops, not recursion, but render recursively: bounded too.
    @Test(arguments: [" ~ x", " + 1", ".a", "[0]", "|trim", " is defined", " and x", " or x", " == 1"])
    func longChainsAreRefused(_ link: String) {
        Self.refusedAtLoad("{{ x" + String(repeating: link, count: 50_000) + " }}", "\(link) × 50,000")
    }

    /// Parsing refuses `source` for its nesting or its size, naming which.
    static func refusedAtLoad(_ source: String, _ label: String) {
        do {
            _ = try ChatTemplate(source)
            Issue.record("\(label) was accepted")
        } catch let error as ChatTemplateError {
            #expect(error.message.contains("nests deeper") || error.message.contains("more than"), "\(label): \(error.message)")
        } catch {
            Issue.record("\(error)")
        }
    }

    /// Published templates stay well inside the limits.
    @Test func ordinaryTemplatesStillWork() throws {
        let chatML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        #expect(try Self.render(chatML, messages: 3).components(separatedBy: "<|im_start|>").count == 4)
        let nested = String(repeating: "{% if true %}", count: 30) + "deep" + String(repeating: "{% endif %}", count: 30)
        #expect(try Self.render(nested) == "deep")
    }

    /// Three nested loops over 1,000 messages, or two over a 200,000-character message, ran on
    /// for ever: a budget of steps per render ends them.
    @Test func loopsHaveABudget() {
        Self.fails("{% for a in messages %}{% for b in messages %}{% for c in messages %}{% endfor %}{% endfor %}{% endfor %}",
                   messages: 1000, "steps")
        Self.fails("{% for m in messages %}{% for a in m.content %}{% for b in m.content %}{% endfor %}{% endfor %}{% endfor %}",
                   content: String(repeating: "a", count: 200_000), "steps")
    }

    /// A string or a list doubled 40 times aborted the process when memory ran out.
    @Test func valuesCannotDoubleForEver() {
        let strings = "{% set x = 'abcdefgh' %}" + String(repeating: "{% set x = x ~ x %}", count: 40) + "{{ x }}"
        Self.fails(strings, "exceed")
        let plus = "{% set x = 'abcdefgh' %}" + String(repeating: "{% set x = x + x %}", count: 40) + "{{ x }}"
        Self.fails(plus, "exceed")
        let lists = "{% set l = [1, 2] %}" + String(repeating: "{% set l = l + l %}", count: 40) + "{{ l|length }}"
        Self.fails(lists, "exceed")
        Self.fails("{% set x = 'abcdefgh' * 10000 %}" + String(repeating: "{% set x = x.replace('a', x) %}", count: 3) + "{{ x }}", "exceed")
    }
}
