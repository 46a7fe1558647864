// ESLint (flat config): typescript-eslint's recommended rules for the front end and its tests.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["llm_widgets/static/**", "node_modules/**", "js/node_modules/**", ".venv/**"] },
  {
    files: ["js/src/**/*.ts", "js/test/**/*.ts"],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
  },
);
