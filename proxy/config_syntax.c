/* config_syntax: see config_syntax.h. */
#include "config_syntax.h"

#include <stdio.h>
#include <string.h>

/* What is wrong with a file that is not JSON, without jansson's own text: that ends
 * with "near '<the text at the error>'", which may be a password ("':' expected near
 * '"hunter2"'"). Only the line, the column, the kind of error (json_error_code) and,
 * when it is one of the fixed phrases below (compared whole, so nothing of the file
 * can pass), jansson's phrase for it in our words. This message goes to the log,
 * to GET /config and to --check-config alike. */
void config_syntax_error(const json_error_t *jerr, char *err, size_t errlen)
{
    static const char *const phrases[][2] = {
        {"'[' or '{' expected", "'{' expected"},
        {"string or '}' expected", "a quoted key or '}' expected"},
        {"':' expected", "':' expected after the key"},
        {"'}' expected", "',' or '}' expected"},
        {"']' expected", "',' or ']' expected"},
        {"unexpected newline", "a newline inside a string"},
        {"invalid escape", "an invalid escape in a string"},
        {"invalid token", "text not in quotes, or a stray character"},
        {"unexpected token", "unexpected token"},
        {"premature end of input", "a string not closed"},
        {"too big negative integer", NULL},
        {"too big integer", NULL},
        {"real number overflow", NULL},
        {"end of file expected", NULL},
        {"maximum parsing depth reached", NULL},
        {"duplicate object key", NULL},
        {"NUL byte in object key not supported", NULL},
        {"\\u0000 is not allowed without JSON_ALLOW_NUL", NULL},
    };
    enum json_error_code code = json_error_code(jerr);
    const char *kind;
    switch (code) {
    case json_error_cannot_open_file: /* "unable to open PATH: strerror": nothing read */
        snprintf(err, errlen, "%s", jerr->text);
        return;
    case json_error_out_of_memory:
        kind = "out of memory";
        break;
    case json_error_stack_overflow:
        kind = "invalid JSON (nested too deeply)";
        break;
    case json_error_invalid_utf8:
        kind = "invalid JSON (not UTF-8)";
        break;
    case json_error_premature_end_of_input:
        kind = "invalid JSON (the file ends too early)";
        break;
    case json_error_end_of_input_expected:
        kind = "invalid JSON (more after the end of the top-level object)";
        break;
    case json_error_null_character:
    case json_error_null_byte_in_key:
        kind = "invalid JSON (\\u0000 in a string)";
        break;
    case json_error_duplicate_key:
        kind = "invalid JSON (duplicate key in an object)";
        break;
    case json_error_numeric_overflow:
        kind = "invalid JSON (number out of range)";
        break;
    default:
        kind = "invalid JSON";
        break;
    }
    const char *detail = NULL;
    for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++) {
        size_t n = strlen(phrases[i][0]);
        if (strncmp(jerr->text, phrases[i][0], n) == 0 &&
            (jerr->text[n] == '\0' || strncmp(jerr->text + n, " near ", 6) == 0)) {
            detail = phrases[i][1];
            break;
        }
    }
    if (code == json_error_invalid_syntax && strncmp(jerr->text, "control character", 17) == 0)
        detail = "a control character inside a string";
    if (code == json_error_invalid_syntax && strncmp(jerr->text, "invalid Unicode", 15) == 0)
        detail = "an invalid \\u escape in a string";
    /* "invalid JSON (the file ends too early)" and a detail: "(..., '}' expected)". */
    char what[160];
    size_t klen = strlen(kind);
    if (!detail)
        snprintf(what, sizeof(what), "%s", kind);
    else if (kind[klen - 1] == ')')
        snprintf(what, sizeof(what), "%.*s, %s)", (int)(klen - 1), kind, detail);
    else
        snprintf(what, sizeof(what), "%s (%s)", kind, detail);
    if (jerr->line < 1)
        snprintf(err, errlen, "%s", what);
    else
        snprintf(err, errlen, "line %d, column %d: %s", jerr->line, jerr->column, what);
}
