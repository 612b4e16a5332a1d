import Foundation
import Testing
@testable import Orochi
@testable import OrochiServer

/// The renderer against jinja2 as transformers configures it, on published templates written
/// into Fixtures/templates by hand (ChatML, Llama 2 with a system prompt, Mistral, Zephyr,
/// Gemma, Llama 3, and one of ours for whitespace control). expected.json is made by
/// Scripts/server/make_template_fixtures.py.
struct ChatTemplateTests {
    struct Expected: Decodable {
        struct Message: Decodable { let role: String; let content: String }
        struct Case: Decodable {
            let template: String
            let conversation: String
            let add_generation_prompt: Bool
            let output: String?
            let raises: String?
            let error: String?
        }
        let conversations: [String: [Message]]
        let cases: [Case]
    }

    static let expected: Expected = {
        let data = FileManager.default.contents(atPath: ServerFixtures.templates.appendingPathComponent("expected.json").path)!
        return try! JSONDecoder().decode(Expected.self, from: data)
    }()

    static var templateNames: [String] { Array(Set(expected.cases.map(\.template))).sorted() }

    @Test(arguments: templateNames)
    func rendersAsJinja2(_ name: String) throws {
        let source = try String(contentsOf: ServerFixtures.templates.appendingPathComponent(name), encoding: .utf8)
        let template = try ChatTemplate(source)
        let cases = Self.expected.cases.filter { $0.template == name }
        #expect(cases.count >= 8)
        for c in cases {
            let messages = Self.expected.conversations[c.conversation]!.map { [("role", TemplateValue.string($0.role)), ("content", .string($0.content))] }
            let label = "\(name) \(c.conversation) add_generation_prompt=\(c.add_generation_prompt)"
            do {
                let out = try template.render(messages: messages, bosToken: "<s>", eosToken: "</s>", addGenerationPrompt: c.add_generation_prompt)
                #expect(c.output == out, "\(label): got \(out.debugDescription)")
            } catch let raised as TemplateRaised {
                #expect(c.raises == raised.message, "\(label): raised \(raised.message)")
            }
            #expect(c.error == nil, "\(label): jinja2 failed: \(c.error ?? "")")
        }
    }

    func render(_ source: String, _ globals: [(String, TemplateValue)] = []) throws -> String {
        try ChatTemplate(source).render(globals)
    }

    @Test func whitespaceControlAsJinjaWithTrimAndLstripBlocks() throws {
        #expect(try render("a\n  {% if true %}\nb\n  {% endif %}\nc") == "a\nb\nc")
        #expect(try render("a  {%- if true -%}  b  {%- endif %}") == "ab")
        #expect(try render("a {% if true %}b{% endif %}") == "a b", "lstrip only at a line start")
        #expect(try render("x\n  {%+ if true %}y{% endif %}") == "x\n  y")
        #expect(try render("{{ 'a' }}\n{{ 'b' }}") == "a\nb", "no newline trimming after {{ }}")
        #expect(try render("a {# note #}\nb") == "a b", "a comment trims its newline too")
        #expect(try render("a\r\n{% if true %}\r\nb{% endif %}") == "a\nb", "line endings become \\n")
        #expect(try render("a\n\n") == "a\n", "one trailing newline is dropped")
        #expect(try render("  {% if true %}x{% endif %}") == "x")
    }

    @Test func expressions() throws {
        let g: [(String, TemplateValue)] = [("xs", .list([.int(1), .int(2), .int(3)])), ("d", .dict([("k", .string("v"))])), ("s", .string("  Hi  "))]
        #expect(try render("{{ xs[1:] }}|{{ xs[-1] }}|{{ xs[::-1] }}|{{ xs | length }}", g) == "[2, 3]|3|[3, 2, 1]|3")
        #expect(try render("{{ d.k }}{{ d['k'] }}{{ d.missing }}|{{ 'k' in d }}|{{ 2 in xs }}|{{ 'x' not in 'abc' }}", g) == "vv|True|True|True")
        #expect(try render("{{ s | trim | upper }}|{{ s.strip().lower() }}|{{ s.startswith('  H') }}|{{ 1 ~ 'a' ~ none }}", g) == "HI|hi|True|1aNone")
        #expect(try render("{{ 7 % 3 }}{{ -7 % 3 }}{{ 2 * 3 - 1 }}{{ 'ab' if false else 'cd' }}{{ 'x' if false }}", g) == "125cd")
        #expect(try render("{% set n = 1 %}{% for x in xs %}{% set n = x %}{{ loop.index }}{{ loop.first }}{% endfor %}{{ n }}", g)
                == "1True2False3False1", "a set inside a loop does not leak out")
        #expect(try render("{% if not xs or d is not defined %}no{% elif xs | length == 3 and d is defined %}yes{% else %}?{% endif %}", g) == "yes")
        #expect(try render("{{ 'a' + 'b' | upper }}|{{ not 1 == 2 }}|{{ [1, 2] + [3] }}|{{ 'ab'[0] }}{{ 'abc'[1:] }}|{{ 3 > 2 }}") == "aB|True|[1, 2, 3]|abc|True")
        #expect(try render("{{ undefined_name }}|{{ undefined_name is defined }}|{{ none is none }}", g) == "|False|True")
        #expect(throws: TemplateRaised(message: "stop here")) { try render("a{{ raise_exception('stop' + ' here') }}") }
        #expect(throws: ChatTemplateError.self) { try render("{{ nothing.attribute }}") }
        #expect(throws: ChatTemplateError.self) { try render("{{ 1 + 'a' }}") }
    }

    /// Constructs outside the subset are refused when the template is parsed, naming them.
    @Test(arguments: [
        ("{% macro m() %}{% endmacro %}", "{% macro %}"),
        ("{% set ns = namespace(found=false) %}", "function 'namespace()'"),
        ("{% set ns.found = true %}", "attribute assignment"),
        ("{{ messages | tojson }}", "filter 'tojson'"),
        ("{% for k, v in d.items() %}{% endfor %}", "for-loop unpacking"),
        ("{{ d.items() }}", "method 'items()'"),
        ("{% for m in messages if m.role %}{% endfor %}", "for-loop filter"),
        ("{% generation %}x{% endgeneration %}", "{% generation %}"),
        ("{{ x is sameas y }}", "test 'sameas'"),
        ("{{ 1.5 }}", "floating-point literal"),
        ("{{ {'a': 1} }}", "dict literal"),
        ("{{ 2 ** 3 }}", "operator '**'"),
        ("{% for m in messages %}{% break %}{% endfor %}", "{% break %}"),
        ("{{ strftime_now('%Y') }}", "function 'strftime_now()'"),
        ("{% if x %}", "without {% endif %}"),
        ("{{ x ", "unclosed tag"),
    ])
    func refusesOutsideTheSubset(_ source: String, _ named: String) {
        do {
            _ = try ChatTemplate(source)
            Issue.record("\(source) was accepted")
        } catch let error as ChatTemplateError {
            #expect(error.message.contains(named), "\(source): \(error.message)")
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func plainFormatForModelsWithoutTemplate() {
        let prompt = ChatSettings.plainPrompt([ChatMessage(role: "developer", content: "Be brief."), ChatMessage(role: "user", content: "Hi"),
                                               ChatMessage(role: "assistant", content: "Hello."), ChatMessage(role: "user", content: "Bye")])
        #expect(prompt == "system: Be brief.\nuser: Hi\nassistant: Hello.\nuser: Bye\nassistant:")
    }
}
