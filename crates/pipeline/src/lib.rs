#[cfg(test)]
mod probe {
    use cel::{Context, Program, Value, objects::{Map, Key}};
    use std::{collections::HashMap, sync::Arc};
    #[test]
    fn probe() {
        for src in ["event.severity >= 7 &&", "event.a ==== 1", "\"é\" + ) ", "a\n  && )", "1 +"] {
            match Program::compile(src) { Ok(_) => println!("ok {src}"), Err(e) => { for er in &e.errors { println!("{src:?}: pos {:?} msg {} id {}", er.pos, er.msg, er.expr_id);} println!("{e}"); } }
        }
        let mut m = HashMap::new();
        m.insert(Key::from("severity"), Value::UInt(8));
        m.insert(Key::from("f"), Value::Float(0.5));
        m.insert(Key::from("actor"), Value::Map(Map{map: Arc::new(HashMap::from([(Key::from("id"), Value::from("x"))]))}));
        m.insert(Key::from("type"), Value::from("auth.login"));
        let ev = Value::Map(Map{map: Arc::new(m)});
        for src in ["event.severity >= 7", "event.f < 1", "event.severity == 8", "has(event.actor.email)", "has(event.nope.email)", "event.type.startsWith('auth.')", "event.type in ['auth.login']", "event.nope == 1", "event.severity", "size(event) > 0", "event.type.matches('a.*')", "[1,2].exists(x, x > event.severity)", "int(event.severity) == 8", "event.severity + 1 > 3", "timestamp('2020-01-01T00:00:00Z')", "event.type.lowerAscii()"] {
            let p = Program::compile(src).unwrap();
            let mut ctx = Context::default();
            ctx.add_variable_from_value("event", ev.clone());
            println!("{src}: {:?}", p.execute(&ctx));
        }
    }
}
