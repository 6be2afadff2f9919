"""age: keys, recipients, headers, encryption and the generated values.

crypto is the only module that imports pyrage. Both sides use this
package; it imports only nixseal.util, nixseal.models and nixseal.errors.
"""
